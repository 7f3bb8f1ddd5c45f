//! The catalog read model: what product pages, listings, bestsellers and categories read.
//!
//! - [`view`]: the documents (`ProductView`, `CategoryView`), listing orders, cursors, pages.
//! - [`port`]: the port, [`CatalogReadModel`], and what a read must reflect ([`MinPosition`]).
//! - [`mod@evolve`]: what one event does to a product, shared by every engine.
//! - one adapter per engine: [`MemoryReadModel`] (embedded), [`postgres`] (projection on the
//!   primary, reader on a replica); the Redis views are in [`crate::redis`].
//! - [`polled`]: the position of a view kept by another process, polled from its server.

pub mod evolve;
mod memory;
pub mod polled;
pub mod port;
pub mod postgres;
pub mod view;

#[cfg(any(test, feature = "testsuite"))]
pub mod conformance;

pub use evolve::{evolve, Evolved};
pub use memory::MemoryReadModel;
pub use port::{CatalogReadModel, MinPosition, ReadModelError, StampScope};
pub use view::{CategoryView, Cursor, KeyPart, ListQuery, Page, ProductView, SortKey, SortOrder};
