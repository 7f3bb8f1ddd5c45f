use std::collections::BTreeMap;

use events::values::{
    Currency, Description, Name, PriceCents, SaleQuantity, Sku, Slug, StockDelta,
};

use super::*;

fn create_kettle(stock: i64, status: ProductStatus) -> CreateProduct {
    CreateProduct {
        sku: Sku::parse("SKU-1").expect("valid"),
        name: Name::parse("Kettle").expect("valid"),
        description: Description::parse("").expect("valid"),
        category: Slug::parse("kitchen").expect("valid"),
        brand: None,
        price_cents: PriceCents::parse(2599).expect("valid"),
        currency: Currency::parse("EUR").expect("valid"),
        stock: Quantity::parse(stock).expect("valid"),
        status,
        attributes: BTreeMap::new(),
        images: Vec::new(),
    }
}

fn created(stock: i64, status: ProductStatus) -> CatalogEvent {
    CatalogEvent::ProductCreated(ProductCreated {
        sku: "SKU-1".into(),
        name: "Kettle".into(),
        description: String::new(),
        category: "kitchen".into(),
        brand: None,
        price_cents: 2599,
        currency: "EUR".into(),
        stock,
        status,
        attributes: BTreeMap::new(),
        images: Vec::new(),
    })
}

fn given(events: &[CatalogEvent]) -> Product {
    let mut product = Product::default();
    for (index, event) in events.iter().enumerate() {
        product.apply(event);
        product.version = index as u64 + 1;
    }
    product
}

fn sale(quantity: i64) -> ProductCommand {
    ProductCommand::RecordSale(RecordSale {
        quantity: SaleQuantity::parse(quantity).expect("valid"),
    })
}

fn adjust(delta: i64) -> ProductCommand {
    ProductCommand::AdjustStock(AdjustStock {
        delta: StockDelta::parse(delta).expect("valid"),
        reason: None,
    })
}

#[test]
fn creating_a_product_records_every_field_of_the_command() {
    assert_eq!(
        Product::create(&create_kettle(5, ProductStatus::Published)),
        vec![created(5, ProductStatus::Published)]
    );
}

#[test]
fn creating_a_category_records_its_slug_name_and_parent() {
    let command = CreateCategory {
        slug: Slug::parse("audio").expect("valid"),
        name: Name::parse("Audio").expect("valid"),
        parent: Some(Slug::parse("electronics").expect("valid")),
    };
    assert_eq!(
        Category::create(&command),
        vec![CatalogEvent::CategoryCreated(CategoryCreated {
            slug: "audio".into(),
            name: "Audio".into(),
            parent: Some("electronics".into()),
        })]
    );
}

#[test]
fn a_sale_lowers_stock_and_raises_sales() {
    let product = given(&[created(5, ProductStatus::Published)]);
    let events = product.decide(&sale(2)).expect("accepted");
    assert_eq!(
        events,
        vec![CatalogEvent::SaleRecorded(SaleRecorded { quantity: 2 })]
    );
    let after = given(&[created(5, ProductStatus::Published), events[0].clone()]);
    assert_eq!((after.stock, after.sales, after.version), (3, 2, 2));
}

#[test]
fn a_sale_beyond_stock_is_refused() {
    let product = given(&[created(1, ProductStatus::Published)]);
    assert_eq!(
        product.decide(&sale(2)),
        Err(DomainError::InsufficientStock {
            stock: 1,
            quantity: 2
        })
    );
}

#[test]
fn a_price_change_records_the_price_it_replaces() {
    let product = given(&[created(0, ProductStatus::Draft)]);
    let command = ProductCommand::ChangePrice(ChangePrice {
        price_cents: PriceCents::parse(1999).expect("valid"),
        currency: Currency::parse("USD").expect("valid"),
    });
    assert_eq!(
        product.decide(&command),
        Ok(vec![CatalogEvent::PriceChanged(PriceChanged {
            price_cents: 1999,
            currency: "USD".into(),
            previous_price_cents: Some(2599),
        })])
    );
}

#[test]
fn a_details_change_records_only_the_fields_given_and_may_clear_the_brand() {
    let product = given(&[created(0, ProductStatus::Draft)]);
    let command = ProductCommand::ChangeDetails(ChangeDetails {
        category: Some(Slug::parse("outdoor").expect("valid")),
        brand: Some(None),
        ..ChangeDetails::default()
    });
    assert_eq!(
        product.decide(&command),
        Ok(vec![CatalogEvent::ProductDetailsChanged(
            ProductDetailsChanged {
                category: Some("outdoor".into()),
                brand: Some(None),
                ..ProductDetailsChanged::default()
            }
        )])
    );
}

#[test]
fn stock_cannot_be_adjusted_below_zero() {
    let product = given(&[created(3, ProductStatus::Draft)]);
    assert_eq!(
        product.decide(&adjust(-4)),
        Err(DomainError::StockBelowZero {
            stock: 3,
            delta: -4
        })
    );
    assert_eq!(
        product.decide(&adjust(-3)),
        Ok(vec![CatalogEvent::StockAdjusted(StockAdjusted {
            delta: -3,
            reason: None
        })])
    );
}

#[test]
fn stock_cannot_be_adjusted_above_the_ceiling_of_a_new_product() {
    let product = given(&[created(3, ProductStatus::Draft)]);
    assert_eq!(
        product.decide(&adjust(Quantity::MAX)),
        Err(DomainError::StockAboveLimit {
            stock: 3,
            delta: Quantity::MAX
        })
    );
    assert!(product.decide(&adjust(Quantity::MAX - 3)).is_ok());
}

#[test]
fn an_adjustment_that_would_overflow_the_stock_is_refused() {
    // Stock beyond the ceiling only arises from events written before it existed.
    let product = given(&[created(i64::MAX - 1, ProductStatus::Draft)]);
    assert_eq!(
        product.decide(&adjust(Quantity::MAX)),
        Err(DomainError::Overflow)
    );
}

#[test]
fn publish_and_unpublish_follow_the_lifecycle() {
    let draft = given(&[created(0, ProductStatus::Draft)]);
    assert_eq!(
        draft.decide(&ProductCommand::Unpublish),
        Err(DomainError::NotPublished)
    );
    let published_events = draft.decide(&ProductCommand::Publish).expect("publish");
    assert_eq!(
        published_events,
        vec![CatalogEvent::ProductPublished(ProductPublished {})]
    );
    let published = given(&[
        created(0, ProductStatus::Draft),
        published_events[0].clone(),
    ]);
    assert_eq!(
        published.decide(&ProductCommand::Publish),
        Err(DomainError::AlreadyPublished)
    );
    assert_eq!(
        published.decide(&ProductCommand::Unpublish),
        Ok(vec![CatalogEvent::ProductUnpublished(
            ProductUnpublished {}
        )])
    );
}

#[test]
fn an_archived_product_accepts_nothing() {
    let archived = given(&[
        created(1, ProductStatus::Published),
        CatalogEvent::ProductArchived(ProductArchived {}),
    ]);
    for command in [ProductCommand::Publish, ProductCommand::Archive, sale(1)] {
        assert_eq!(archived.decide(&command), Err(DomainError::Archived));
    }
}

fn set_synonyms(groups: &[&[&str]]) -> SetSynonyms {
    use events::values::{SynonymGroup, SynonymTerm, Synonyms};
    let groups = groups
        .iter()
        .map(|words| {
            let terms = words
                .iter()
                .map(|word| SynonymTerm::parse(word).expect("valid"))
                .collect();
            SynonymGroup::parse(terms).expect("valid")
        })
        .collect();
    SetSynonyms {
        synonyms: Synonyms::parse(groups).expect("valid"),
    }
}

fn synonyms_changed(groups: &[&[&str]]) -> CatalogEvent {
    CatalogEvent::SynonymsChanged(SynonymsChanged {
        groups: groups
            .iter()
            .map(|words| words.iter().map(|word| (*word).to_owned()).collect())
            .collect(),
    })
}

#[test]
fn setting_synonyms_records_the_whole_new_set() {
    let settings = SearchSettings::default();
    assert_eq!(
        settings.decide(&set_synonyms(&[&["tv", "television"]])),
        vec![synonyms_changed(&[&["tv", "television"]])]
    );
}

#[test]
fn setting_the_synonyms_they_already_are_records_nothing_and_another_set_replaces_them() {
    let mut settings = SearchSettings::default();
    settings.apply(&synonyms_changed(&[&["tv", "television"]]));
    assert!(settings
        .decide(&set_synonyms(&[&["tv", "television"]]))
        .is_empty());
    assert_eq!(
        settings.decide(&set_synonyms(&[])),
        vec![synonyms_changed(&[])]
    );
    // Clearing synonyms that were never set changes nothing either.
    assert!(SearchSettings::default()
        .decide(&set_synonyms(&[]))
        .is_empty());
}

#[test]
fn product_commands_on_the_search_settings_stream_find_no_product() {
    let product = given(&[synonyms_changed(&[&["tv", "television"]])]);
    assert_eq!(
        product.decide(&ProductCommand::Publish),
        Err(DomainError::NotFound)
    );
}

#[test]
fn a_snapshot_holds_the_state_and_one_of_another_format_is_not_read() {
    let product = given(&[created(5, ProductStatus::Published)]);
    let sold = product.decide(&sale(2)).expect("sale");
    let mut after = product.clone();
    for event in &sold {
        after.apply(event);
    }
    after.version = 2;
    let id = uuid::Uuid::now_v7();
    let snapshot = after.snapshot(id);
    assert_eq!((snapshot.aggregate_id, snapshot.aggregate_version), (id, 2));
    assert_eq!(Product::from_snapshot(&snapshot), Some(after.clone()));
    let older_format = events::store::Snapshot {
        state_version: PRODUCT_STATE_VERSION + 1,
        ..snapshot.clone()
    };
    assert_eq!(Product::from_snapshot(&older_format), None);
    let wrong_version = events::store::Snapshot {
        aggregate_version: 3,
        ..snapshot
    };
    assert_eq!(Product::from_snapshot(&wrong_version), None);
}

#[test]
fn a_product_that_was_never_created_is_not_found() {
    assert_eq!(
        Product::default().decide(&ProductCommand::Publish),
        Err(DomainError::NotFound)
    );
}

fn image(n: usize) -> events::AddedImage {
    let id = format!("{n:032x}");
    events::AddedImage {
        url: format!("/images/{id}.page.jpg"),
        thumbnail_url: format!("/images/{id}.thumb.jpg"),
        id,
        width: 100,
        height: 100,
    }
}

fn add_image(n: usize) -> ProductCommand {
    ProductCommand::AddImage(AddImage { image: image(n) })
}

#[test]
fn an_uploaded_image_is_added_once_and_removed_by_its_id() {
    let mut product = given(&[created(5, ProductStatus::Draft)]);
    let added = product.decide(&add_image(1)).expect("adds");
    assert_eq!(
        added,
        vec![CatalogEvent::ImagesAdded(ImagesAdded {
            images: vec![image(1)]
        })]
    );
    product.apply(&added[0]);
    assert_eq!(
        product.decide(&add_image(1)),
        Err(DomainError::ImageAlreadyAdded)
    );
    let remove = |id: String| ProductCommand::RemoveImage(RemoveImage { image_id: id });
    assert_eq!(
        product.decide(&remove(image(2).id)),
        Err(DomainError::ImageNotFound)
    );
    let removed = product.decide(&remove(image(1).id)).expect("removes");
    assert_eq!(
        removed,
        vec![CatalogEvent::ImageRemoved(ImageRemoved {
            image_id: image(1).id,
            url: image(1).url,
        })]
    );
    product.apply(&removed[0]);
    assert!(product.images.is_empty());
    assert_eq!(
        product.decide(&remove(image(1).id)),
        Err(DomainError::ImageNotFound)
    );
}

#[test]
fn a_product_takes_at_most_max_images_and_a_seeded_picture_is_removed_like_an_upload() {
    let mut product = given(&[created(5, ProductStatus::Draft)]);
    for n in 0..MAX_IMAGES {
        let events = product.decide(&add_image(n)).expect("adds");
        product.apply(&events[0]);
    }
    assert_eq!(
        product.decide(&add_image(999)),
        Err(DomainError::TooManyImages)
    );
    // Images given by URL (a demo picture seeded with its product, a PATCH) count too, and an
    // uploaded image's file among them can be removed by its id.
    product.apply(&CatalogEvent::ProductDetailsChanged(
        ProductDetailsChanged {
            images: Some(vec!["https://cdn.example.com/x.jpg".into(), image(3).url]),
            ..Default::default()
        },
    ));
    assert!(product.decide(&add_image(999)).is_ok());
    let removed = product
        .decide(&ProductCommand::RemoveImage(RemoveImage {
            image_id: image(3).id,
        }))
        .expect("removes");
    product.apply(&removed[0]);
    assert_eq!(
        product.images,
        vec!["https://cdn.example.com/x.jpg".to_owned()]
    );
}
