//! The conformance suites of the ports this crate defines, behind the `testsuite` feature (so
//! they are built only for the tests that run them): [`store`] for every
//! [`EventStore`](crate::store::EventStore) adapter, [`bus`] for every
//! [`EventBus`](crate::bus::EventBus) adapter. Each is a macro
//! ([`event_store_suite!`](crate::event_store_suite), [`event_bus_suite!`](crate::event_bus_suite))
//! that expands into one `#[tokio::test]` per case, so one failure does not hide the rest.

pub mod bus;
mod snapshots;
pub mod store;

pub use store::{sample_event, sample_stream};

use crate::catalog_events::{ProductCreated, ProductStatus};

/// A published product with plain values (no brand, 100 cents in USD, 10 in stock), for the
/// tests of the views that need products to count or list.
pub fn published_product(sku: &str, name: &str, category: &str) -> ProductCreated {
    ProductCreated {
        sku: sku.into(),
        name: name.into(),
        description: String::new(),
        category: category.into(),
        brand: None,
        price_cents: 100,
        currency: "USD".into(),
        stock: 10,
        status: ProductStatus::Published,
        attributes: Default::default(),
        images: Vec::new(),
    }
}
