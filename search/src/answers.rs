//! What both adapters share in reading an engine's facet counts into the port's answer.

use crate::{PriceBucket, PRICE_BUCKETS};

/// The price facet from the engine's counts of [`PRICE_BUCKETS`], in their order.
pub(crate) fn price_buckets(counts: impl IntoIterator<Item = u64>) -> Vec<PriceBucket> {
    counts
        .into_iter()
        .zip(PRICE_BUCKETS.iter())
        .map(|(count, (from, to))| PriceBucket {
            from: *from,
            to: *to,
            count,
        })
        .collect()
}
