//! The embedded adapter under its earlier path (`search::tantivy_index::TantivyIndex`), for the
//! callers that name it so; it lives in [`crate::tantivy`].

pub use crate::tantivy::TantivyIndex;
