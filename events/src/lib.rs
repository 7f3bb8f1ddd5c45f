//! The catalog's events and the ports that carry them.
//!
//! - [`envelope`]: the wire envelope every event travels in (API.md "Event envelope").
//! - [`catalog_events`]: the typed product, category and search-settings events, each with a
//!   schema version.
//! - [`schema`]: JSON Schema generation for `schemas/`, checked for drift by a test.
//! - [`store`]: the event store port ([`store::EventStore`]) and its error kinds.
//! - `conformance` (feature `testsuite`): the suites every event store and bus adapter must
//!   pass, as macros that expand into one test per case.
//! - [`bus`]: the bus port ([`bus::EventBus`]) and the embedded in-process adapter.
//! - [`values`]: the value types (`Sku`, `Slug`, `Currency`, `PriceCents`, `Quantity`, …) the
//!   write side's commands and the read side's filters parse through.
//! - [`watermark`]: a view's applied position, and waiting until it reaches one.

pub mod analytics;
pub mod bus;
pub mod catalog_events;
#[cfg(feature = "testsuite")]
pub mod conformance;
pub mod envelope;
pub mod schema;
pub mod store;
pub mod trace;
pub mod values;
pub mod watermark;

pub use catalog_events::{
    AddedImage, AttributeValue, CatalogEvent, CategoryCreated, ImageRemoved, ImagesAdded,
    PriceChanged, PriceChangedV1, ProductArchived, ProductCreated, ProductDetailsChanged,
    ProductPublished, ProductStatus, ProductUnpublished, SaleRecorded, StockAdjusted,
    SynonymsChanged, SEARCH_SETTINGS_ID,
};
pub use envelope::{Envelope, EventMetadata, NewEvent};
pub use watermark::Watermark;
