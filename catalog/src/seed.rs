//! Loading generated products into the store: `catalog seed` and `serve --demo` on an empty
//! store. The products themselves come from [`crate::demo`].

use anyhow::Context;
use command_api::commands::{CreateCategory, CreateProduct, ProductCommand, RecordSale};
use command_api::service::CommandService;
use events::EventMetadata;

use crate::demo;

/// The metadata of events the binary writes itself (demo data, seeding).
pub fn system_metadata(purpose: &str) -> EventMetadata {
    EventMetadata {
        actor: Some("system".to_owned()),
        correlation_id: Some(purpose.to_owned()),
        causation_id: None,
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

/// Appends `count` generated products in batches, calling `progress` after each batch.
pub async fn seed_products(
    commands: &CommandService,
    seed: u64,
    count: usize,
    mut progress: impl FnMut(usize),
) -> anyhow::Result<()> {
    ensure_demo_categories(commands).await?;
    let products = demo::products(seed, count);
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
    for batch in with_sales.chunks(1000) {
        commands
            .create_products_with_history(batch.to_vec(), system_metadata("seed"))
            .await
            .context("cannot append generated products")?;
        progress(batch.len());
    }
    Ok(())
}
