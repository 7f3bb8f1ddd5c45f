//! Encoded answers of listings, bestseller lists and the category list, built once and served
//! as bytes while the read model's change stamp for what they show stays the same
//! ([`CatalogReadModel::change_stamp`]: the embedded in-memory view offers one; the distributed
//! read path builds listings from its L1's encoded products instead).
//!
//! The stamp is read before the answer is built, so an answer is never kept past a change it
//! did not see; a hit reports the view's position read before its stamp.
//!
//! [`CatalogReadModel::change_stamp`]: projectors::read_model::CatalogReadModel::change_stamp

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::HeaderValue;
use moka::sync::Cache;
use projectors::read_model::ListQuery;

/// What an answer answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AnswerKey {
    /// A listing page, its query normalised.
    Listing(ListQuery),
    Bestsellers(Option<String>, usize),
    Categories,
}

/// An encoded answer: body, validator and surrogate keys, and the stamp it was built at.
#[derive(Debug)]
pub struct Answer {
    pub body: Bytes,
    pub tag: HeaderValue,
    pub keys: HeaderValue,
    pub stamp: u64,
}

/// The encoded answers of one process (10,000 at most).
pub struct AnswerCache {
    answers: Cache<AnswerKey, Arc<Answer>>,
}

impl Default for AnswerCache {
    fn default() -> Self {
        AnswerCache {
            answers: Cache::new(10_000),
        }
    }
}

impl AnswerCache {
    /// The answer under `key` if it was built at `stamp`.
    pub fn get(&self, key: &AnswerKey, stamp: u64) -> Option<Arc<Answer>> {
        self.answers.get(key).filter(|answer| answer.stamp == stamp)
    }

    pub fn insert(&self, key: AnswerKey, answer: Answer) {
        self.answers.insert(key, Arc::new(answer));
    }
}
