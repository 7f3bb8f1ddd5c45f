//! The product aggregate: rehydrated from its events, it decides which events a command
//! produces and enforces API.md's rules.

use events::{
    CatalogEvent, Envelope, PriceChanged, ProductArchived, ProductCreated, ProductDetailsChanged,
    ProductPublished, ProductStatus, ProductUnpublished, SaleRecorded, StockAdjusted,
};

/// What an admin asks of an existing product.
#[derive(Debug, Clone, PartialEq)]
pub enum ProductCommand {
    ChangeDetails(ProductDetailsChanged),
    ChangePrice(PriceChanged),
    AdjustStock(StockAdjusted),
    RecordSale(SaleRecorded),
    Publish,
    Unpublish,
    Archive,
}

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

/// The state a product's decisions need.
#[derive(Debug, Clone, Default, PartialEq)]
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
        for envelope in history {
            product.apply(&envelope.decode()?);
            product.version = envelope.aggregate_version;
        }
        Ok(product)
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
            CatalogEvent::CategoryCreated(_) => {}
        }
    }

    /// The events for a new product.
    pub fn create(created: ProductCreated) -> Vec<CatalogEvent> {
        vec![CatalogEvent::ProductCreated(created)]
    }

    /// The events `command` produces, or why it is refused.
    pub fn decide(&self, command: &ProductCommand) -> Result<Vec<CatalogEvent>, DomainError> {
        let status = self.status.ok_or(DomainError::NotFound)?;
        if status == ProductStatus::Archived {
            return Err(DomainError::Archived);
        }
        let event = match command {
            ProductCommand::ChangeDetails(changed) => {
                CatalogEvent::ProductDetailsChanged(changed.clone())
            }
            ProductCommand::ChangePrice(price) => CatalogEvent::PriceChanged(PriceChanged {
                previous_price_cents: self.price_cents,
                ..price.clone()
            }),
            ProductCommand::AdjustStock(adjustment) => {
                let after = self
                    .stock
                    .checked_add(adjustment.delta)
                    .ok_or(DomainError::Overflow)?;
                if after < 0 {
                    return Err(DomainError::StockBelowZero {
                        stock: self.stock,
                        delta: adjustment.delta,
                    });
                }
                // The same ceiling a new product's stock has.
                if after > crate::validation::MAX_STOCK {
                    return Err(DomainError::StockAboveLimit {
                        stock: self.stock,
                        delta: adjustment.delta,
                    });
                }
                CatalogEvent::StockAdjusted(adjustment.clone())
            }
            ProductCommand::RecordSale(sale) => {
                if sale.quantity > self.stock {
                    return Err(DomainError::InsufficientStock {
                        stock: self.stock,
                        quantity: sale.quantity,
                    });
                }
                self.sales
                    .checked_add(sale.quantity)
                    .ok_or(DomainError::Overflow)?;
                CatalogEvent::SaleRecorded(sale.clone())
            }
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
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

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

    #[test]
    fn a_sale_lowers_stock_and_raises_sales() {
        let product = given(&[created(5, ProductStatus::Published)]);
        let events = product
            .decide(&ProductCommand::RecordSale(SaleRecorded { quantity: 2 }))
            .expect("accepted");
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
            product.decide(&ProductCommand::RecordSale(SaleRecorded { quantity: 2 })),
            Err(DomainError::InsufficientStock {
                stock: 1,
                quantity: 2
            })
        );
    }

    #[test]
    fn stock_cannot_be_adjusted_below_zero() {
        let product = given(&[created(3, ProductStatus::Draft)]);
        let adjust = |delta| {
            ProductCommand::AdjustStock(StockAdjusted {
                delta,
                reason: None,
            })
        };
        assert_eq!(
            product.decide(&adjust(-4)),
            Err(DomainError::StockBelowZero {
                stock: 3,
                delta: -4
            })
        );
        assert!(product.decide(&adjust(-3)).is_ok());
        assert_eq!(
            product.decide(&adjust(i64::MAX)),
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
        let published = given(&[
            created(0, ProductStatus::Draft),
            published_events[0].clone(),
        ]);
        assert_eq!(
            published.decide(&ProductCommand::Publish),
            Err(DomainError::AlreadyPublished)
        );
        assert!(published.decide(&ProductCommand::Unpublish).is_ok());
    }

    #[test]
    fn an_archived_product_accepts_nothing() {
        let archived = given(&[
            created(1, ProductStatus::Published),
            CatalogEvent::ProductArchived(ProductArchived {}),
        ]);
        for command in [
            ProductCommand::Publish,
            ProductCommand::Archive,
            ProductCommand::RecordSale(SaleRecorded { quantity: 1 }),
        ] {
            assert_eq!(archived.decide(&command), Err(DomainError::Archived));
        }
    }

    #[test]
    fn a_product_that_was_never_created_is_not_found() {
        assert_eq!(
            Product::default().decide(&ProductCommand::Publish),
            Err(DomainError::NotFound)
        );
    }
}
