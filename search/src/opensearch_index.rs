//! The distributed adapter and its request shapes under their earlier path
//! (`search::opensearch_index::…`), for the callers that name them so; they live in
//! [`crate::opensearch`].

pub use crate::opensearch::*;
