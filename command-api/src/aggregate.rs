//! The product, category and search-settings aggregates: rehydrated from their events, they
//! decide which events a command ([`crate::commands`]) produces and enforce API.md's rules on
//! state. They depend on the events, the commands and the value types only; parsing requests is
//! `validation`'s job.

use events::{
    CatalogEvent, CategoryCreated, Envelope, ImageRemoved, ImagesAdded, PriceChanged,
    ProductArchived, ProductCreated, ProductDetailsChanged, ProductPublished, ProductStatus,
    ProductUnpublished, SaleRecorded, StockAdjusted, SynonymsChanged,
};

use events::values::Quantity;

use crate::commands::{
    AddImage, AdjustStock, ChangeDetails, ChangePrice, CreateCategory, CreateProduct,
    ProductCommand, RecordSale, RemoveImage, SetSynonyms,
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
    #[error("the product has this image already")]
    ImageAlreadyAdded,
    #[error("the product has {MAX_IMAGES} images, the most it may have")]
    TooManyImages,
    #[error("the product has no uploaded image with this id")]
    ImageNotFound,
}

/// The most images a product may have (uploaded or by URL; the validation's limit too).
pub const MAX_IMAGES: usize = crate::validation::MAX_IMAGES;

/// The format of [`Product`]'s snapshots: bump it whenever the state's fields or their meaning
/// change, and the store's snapshots of the old format are ignored (and replaced by new ones
/// as products are written).
pub const PRODUCT_STATE_VERSION: u32 = 2;

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
    /// The product's `images` (URLs), to bound their number and find what a removal removes:
    /// an uploaded image is the URL whose file is `<image id>.page.jpg` (uploaded through the
    /// API, or a demo picture seeded with its product).
    #[serde(default)]
    pub images: Vec<String>,
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
                self.images = created.images.clone();
            }
            CatalogEvent::ProductDetailsChanged(changed) => {
                if let Some(category) = &changed.category {
                    self.category = category.clone();
                }
                if let Some(images) = &changed.images {
                    self.images = images.clone();
                }
            }
            CatalogEvent::ImagesAdded(added) => {
                for image in &added.images {
                    if !self.images.contains(&image.url) {
                        self.images.push(image.url.clone());
                    }
                }
            }
            CatalogEvent::ImageRemoved(removed) => self.images.retain(|url| *url != removed.url),
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
            ProductCommand::AddImage(add) => self.add_image(add)?,
            ProductCommand::RemoveImage(remove) => self.remove_image(remove)?,
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

    /// The URL of uploaded image `image_id` among the product's images.
    fn uploaded_image(&self, image_id: &str) -> Option<&String> {
        let file = images::page_name(image_id);
        self.images
            .iter()
            .find(|url| url.rsplit('/').next() == Some(file.as_str()))
    }

    fn add_image(&self, add: &AddImage) -> Result<CatalogEvent, DomainError> {
        // Its URL names its file, so this also finds the same URL.
        if self.uploaded_image(&add.image.id).is_some() {
            return Err(DomainError::ImageAlreadyAdded);
        }
        if self.images.len() >= MAX_IMAGES {
            return Err(DomainError::TooManyImages);
        }
        Ok(CatalogEvent::ImagesAdded(ImagesAdded {
            images: vec![add.image.clone()],
        }))
    }

    fn remove_image(&self, remove: &RemoveImage) -> Result<CatalogEvent, DomainError> {
        let url = self
            .uploaded_image(&remove.image_id)
            .ok_or(DomainError::ImageNotFound)?;
        Ok(CatalogEvent::ImageRemoved(ImageRemoved {
            image_id: remove.image_id.clone(),
            url: url.clone(),
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
mod tests;
