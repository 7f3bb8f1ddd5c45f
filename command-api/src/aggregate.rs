//! The product, category and search-settings aggregates: rehydrated from their events, they
//! decide which events a command ([`crate::commands`]) produces and enforce API.md's rules on
//! state. They depend on the events, the commands and the value types only; parsing requests is
//! `validation`'s job.

use events::{
    CatalogEvent, CategoryCreated, Envelope, PriceChanged, ProductArchived, ProductCreated,
    ProductDetailsChanged, ProductPublished, ProductStatus, ProductUnpublished, SaleRecorded,
    StockAdjusted, SynonymsChanged,
};

use events::values::Quantity;

use crate::commands::{
    AdjustStock, ChangeDetails, ChangePrice, CreateCategory, CreateProduct, ProductCommand,
    RecordSale, SetSynonyms,
};

/// A command the product's current state does not allow.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DomainError {
    #[error("the product does not exist")]
    NotFound,
    #[error("the product is archived and accepts no changes")]
    Archived,
    #[error("stock would go below zero: {stock} in stock, adjustment {delta}")]
    StockBelowZero { stock: i64, delta: i64 },
    #[error("not enough stock: {stock} in stock, {quantity} requested")]
    InsufficientStock { stock: i64, quantity: i64 },
    #[error("stock would exceed 1,000,000,000: {stock} in stock, adjustment {delta}")]
    StockAboveLimit { stock: i64, delta: i64 },
    #[error("the product is already published")]
    AlreadyPublished,
    #[error("the product is not published")]
    NotPublished,
    #[error("the change would overflow a counter")]
    Overflow,
}

/// The format of [`Product`]'s snapshots: bump it whenever the state's fields or their meaning
/// change, and the store's snapshots of the old format are ignored (and replaced by new ones
/// as products are written).
pub const PRODUCT_STATE_VERSION: u32 = 1;

/// The state a product's decisions need (also what its snapshots hold).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Product {
    /// 0 until created.
    pub version: u64,
    pub status: Option<ProductStatus>,
    pub stock: i64,
    pub sales: i64,
    pub category: String,
    /// The current price, for `PriceChanged.previous_price_cents`.
    pub price_cents: Option<i64>,
}

impl Product {
    /// Rehydrates from the aggregate's envelopes (in version order).
    pub fn from_history(history: &[Envelope]) -> Result<Self, events::catalog_events::DecodeError> {
        let mut product = Product::default();
        product.catch_up(history)?;
        Ok(product)
    }

    /// Folds the envelopes that follow this state's version (in version order).
    pub fn catch_up(
        &mut self,
        events: &[Envelope],
    ) -> Result<(), events::catalog_events::DecodeError> {
        for envelope in events {
            self.apply(&envelope.decode()?);
            self.version = envelope.aggregate_version;
        }
        Ok(())
    }

    /// This state as product `id`'s snapshot.
    pub fn snapshot(&self, id: uuid::Uuid) -> events::store::Snapshot {
        events::store::Snapshot {
            aggregate_id: id,
            aggregate_version: self.version,
            state_version: PRODUCT_STATE_VERSION,
            // A struct of plain fields: serialising it cannot fail.
            state: serde_json::to_value(self).unwrap_or_default(),
        }
    }

    /// The state a snapshot holds; `None` when it is of another format or cannot be read
    /// (then the caller replays the events instead).
    pub fn from_snapshot(snapshot: &events::store::Snapshot) -> Option<Self> {
        if snapshot.state_version != PRODUCT_STATE_VERSION {
            return None;
        }
        let product: Product = serde_json::from_value(snapshot.state.clone()).ok()?;
        (product.version == snapshot.aggregate_version).then_some(product)
    }

    pub fn exists(&self) -> bool {
        self.status.is_some()
    }

    /// Folds one event into the state (events are facts: no checks here).
    pub fn apply(&mut self, event: &CatalogEvent) {
        match event {
            CatalogEvent::ProductCreated(created) => {
                self.status = Some(created.status);
                self.stock = created.stock;
                self.category = created.category.clone();
                self.price_cents = Some(created.price_cents);
            }
            CatalogEvent::ProductDetailsChanged(changed) => {
                if let Some(category) = &changed.category {
                    self.category = category.clone();
                }
            }
            CatalogEvent::StockAdjusted(adjusted) => self.stock += adjusted.delta,
            CatalogEvent::SaleRecorded(sale) => {
                self.stock -= sale.quantity;
                self.sales += sale.quantity;
            }
            CatalogEvent::ProductPublished(_) => self.status = Some(ProductStatus::Published),
            CatalogEvent::ProductUnpublished(_) => self.status = Some(ProductStatus::Draft),
            CatalogEvent::ProductArchived(_) => self.status = Some(ProductStatus::Archived),
            CatalogEvent::PriceChanged(price) => self.price_cents = Some(price.price_cents),
            CatalogEvent::CategoryCreated(_) | CatalogEvent::SynonymsChanged(_) => {}
        }
    }

    /// The events for a new product.
    pub fn create(command: &CreateProduct) -> Vec<CatalogEvent> {
        vec![CatalogEvent::ProductCreated(ProductCreated {
            sku: command.sku.to_string(),
            name: command.name.to_string(),
            description: command.description.to_string(),
            category: command.category.to_string(),
            brand: command.brand.as_ref().map(ToString::to_string),
            price_cents: command.price_cents.get(),
            currency: command.currency.to_string(),
            stock: command.stock.get(),
            status: command.status,
            attributes: command.attributes.clone(),
            images: command.images.clone(),
        })]
    }

    /// The events `command` produces, or why it is refused.
    pub fn decide(&self, command: &ProductCommand) -> Result<Vec<CatalogEvent>, DomainError> {
        let status = self.status.ok_or(DomainError::NotFound)?;
        if status == ProductStatus::Archived {
            return Err(DomainError::Archived);
        }
        let event = match command {
            ProductCommand::ChangeDetails(change) => Self::change_details(change),
            ProductCommand::ChangePrice(change) => self.change_price(change),
            ProductCommand::AdjustStock(adjustment) => self.adjust_stock(adjustment)?,
            ProductCommand::RecordSale(sale) => self.record_sale(*sale)?,
            ProductCommand::Publish => {
                if status == ProductStatus::Published {
                    return Err(DomainError::AlreadyPublished);
                }
                CatalogEvent::ProductPublished(ProductPublished {})
            }
            ProductCommand::Unpublish => {
                if status != ProductStatus::Published {
                    return Err(DomainError::NotPublished);
                }
                CatalogEvent::ProductUnpublished(ProductUnpublished {})
            }
            ProductCommand::Archive => CatalogEvent::ProductArchived(ProductArchived {}),
        };
        Ok(vec![event])
    }

    fn change_details(change: &ChangeDetails) -> CatalogEvent {
        CatalogEvent::ProductDetailsChanged(ProductDetailsChanged {
            name: change.name.as_ref().map(ToString::to_string),
            description: change.description.as_ref().map(ToString::to_string),
            category: change.category.as_ref().map(ToString::to_string),
            brand: change
                .brand
                .as_ref()
                .map(|brand| brand.as_ref().map(ToString::to_string)),
            attributes: change.attributes.clone(),
            images: change.images.clone(),
        })
    }

    fn change_price(&self, change: &ChangePrice) -> CatalogEvent {
        CatalogEvent::PriceChanged(PriceChanged {
            price_cents: change.price_cents.get(),
            currency: change.currency.to_string(),
            previous_price_cents: self.price_cents,
        })
    }

    fn adjust_stock(&self, adjustment: &AdjustStock) -> Result<CatalogEvent, DomainError> {
        let delta = adjustment.delta.get();
        let after = self.stock.checked_add(delta).ok_or(DomainError::Overflow)?;
        if after < 0 {
            return Err(DomainError::StockBelowZero {
                stock: self.stock,
                delta,
            });
        }
        // The same ceiling a new product's stock has.
        if after > Quantity::MAX {
            return Err(DomainError::StockAboveLimit {
                stock: self.stock,
                delta,
            });
        }
        Ok(CatalogEvent::StockAdjusted(StockAdjusted {
            delta,
            reason: adjustment.reason.as_ref().map(ToString::to_string),
        }))
    }

    fn record_sale(&self, sale: RecordSale) -> Result<CatalogEvent, DomainError> {
        let quantity = sale.quantity.get();
        if quantity > self.stock {
            return Err(DomainError::InsufficientStock {
                stock: self.stock,
                quantity,
            });
        }
        self.sales
            .checked_add(quantity)
            .ok_or(DomainError::Overflow)?;
        Ok(CatalogEvent::SaleRecorded(SaleRecorded { quantity }))
    }
}

/// A category: created once, under its slug's aggregate id (a second create is a conflict
/// the store's version check reports).
pub struct Category;

impl Category {
    /// The events for a new category.
    pub fn create(command: &CreateCategory) -> Vec<CatalogEvent> {
        vec![CatalogEvent::CategoryCreated(CategoryCreated {
            slug: command.slug.to_string(),
            name: command.name.to_string(),
            parent: command.parent.as_ref().map(ToString::to_string),
        })]
    }
}

/// The search settings: one stream (`events::SEARCH_SETTINGS_ID`) whose every event is a
/// `SynonymsChanged` carrying the whole set, so the last one is the state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchSettings {
    /// 0 before the first change.
    pub version: u64,
    /// The position of the last change (0 before the first).
    pub position: u64,
    pub synonyms: Vec<Vec<String>>,
}

impl SearchSettings {
    /// Rehydrates from the stream's envelopes (in version order). Only the last one is
    /// decoded: each event replaces the whole set, so the earlier ones do not matter.
    pub fn from_history(history: &[Envelope]) -> Result<Self, events::catalog_events::DecodeError> {
        let mut settings = SearchSettings::default();
        if let Some(last) = history.last() {
            settings.apply(&last.decode()?);
            settings.version = last.aggregate_version;
            settings.position = last.position;
        }
        Ok(settings)
    }

    /// Folds one event into the state.
    pub fn apply(&mut self, event: &CatalogEvent) {
        if let CatalogEvent::SynonymsChanged(changed) = event {
            self.synonyms = changed.groups.clone();
        }
    }

    /// The events that set the synonyms to `command`'s: none when they already are those
    /// (a repeated `PUT` appends nothing).
    pub fn decide(&self, command: &SetSynonyms) -> Vec<CatalogEvent> {
        let groups = command.synonyms.clone().into_strings();
        if groups == self.synonyms {
            return Vec::new();
        }
        vec![CatalogEvent::SynonymsChanged(SynonymsChanged { groups })]
    }
}

#[cfg(test)]
mod tests {
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
}
