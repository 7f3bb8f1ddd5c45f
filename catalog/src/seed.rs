//! Loading generated products into the store: `catalog seed` and `serve --demo` on an empty
//! store. The products themselves come from [`crate::demo`].

use anyhow::Context;
use command_api::commands::{CreateCategory, CreateProduct, ProductCommand, RecordSale};
use command_api::service::CommandService;
use events::EventMetadata;
use futures::StreamExt;

use crate::demo;

/// The metadata of events the binary writes itself (demo data, seeding).
pub fn system_metadata(purpose: &str) -> EventMetadata {
    EventMetadata {
        actor: Some("system".to_owned()),
        correlation_id: Some(purpose.to_owned()),
        causation_id: None,
        traceparent: None,
    }
}

/// Creates the demo categories that do not exist yet.
pub async fn ensure_demo_categories(commands: &CommandService) -> anyhow::Result<()> {
    for category in demo::categories() {
        let category = CreateCategory::try_from(category).context("a demo category is invalid")?;
        match commands
            .create_category(category, system_metadata("demo-categories"))
            .await
        {
            Ok(_) | Err(command_api::service::CommandError::DuplicateCategory(_)) => {}
            Err(error) => return Err(error).context("cannot create the demo categories"),
        }
    }
    Ok(())
}

/// Batches of products appended at once: enough to keep the store's group commit full
/// while one batch is being prepared and another committed.
const BATCHES_IN_FLIGHT: usize = 4;

/// Appends `count` generated products in batches of 1,000 (several in flight, so the store
/// commits them in groups), calling `progress(products, events)` after each batch. Batches
/// are independent transactions: an interrupted seed leaves whole batches. With `pictures`,
/// each product shows the picture of its colour.
pub async fn seed_products(
    commands: &CommandService,
    seed: u64,
    count: usize,
    pictures: Option<&crate::demo_pictures::DemoPictures>,
    mut progress: impl FnMut(usize, usize),
) -> anyhow::Result<()> {
    ensure_demo_categories(commands).await?;
    let mut products = demo::products(seed, count);
    if let Some(pictures) = pictures {
        for product in &mut products {
            let colour = match product.attributes.get("color") {
                Some(events::AttributeValue::Text(colour)) => colour.as_str(),
                _ => "",
            };
            product.images = pictures.get(colour).cloned().into_iter().collect();
        }
    }
    let sales = demo::sales(seed, &products);
    let with_sales = products
        .into_iter()
        .zip(sales)
        .map(|(created, units)| {
            let commands = if units > 0 && created.status == events::ProductStatus::Published {
                let quantity = events::values::SaleQuantity::parse(units)?;
                vec![ProductCommand::RecordSale(RecordSale { quantity })]
            } else {
                Vec::new()
            };
            Ok((CreateProduct::try_from(created)?, commands))
        })
        .collect::<Result<Vec<_>, events::values::ValueError>>()
        .context("a generated product is invalid")?;
    let mut appended = futures::stream::iter(with_sales.chunks(1000))
        .map(|batch| async move {
            let events = batch.iter().map(|(_, history)| 1 + history.len()).sum();
            commands
                .create_products_with_history(batch.to_vec(), system_metadata("seed"))
                .await
                .context("cannot append generated products")?;
            anyhow::Ok((batch.len(), events))
        })
        .buffered(BATCHES_IN_FLIGHT);
    while let Some(batch) = appended.next().await {
        let (products, events) = batch?;
        progress(products, events);
    }
    Ok(())
}
