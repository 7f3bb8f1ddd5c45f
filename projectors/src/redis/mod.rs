//! The Redis views: product documents, a sorted index per scope (all products, and each
//! category) and per listing order, category counts, and the checkpoint — written by the
//! Redis projector ([`RedisProjection`]), read by query-api replicas ([`RedisReadModel`]).
//!
//! # Layout (every key under the view's hash tag, see [`redis_client`])
//!
//! | key | what |
//! | --- | --- |
//! | `p:<id>` | the product document (JSON), whatever its status |
//! | `v:<id>` | the product version the document is at |
//! | `ix:<scope>:<order>` | published products in one order: a sorted set ordered by member, each member the product's sort key encoded to sort as bytes, then its id; scope `all` or `c:<slug>` |
//! | `counts` | hash: category slug → published products |
//! | `categories` | hash: category slug → category JSON |
//! | `cv:<category id>` | the category version applied |
//! | `checkpoint` | every position up to it applied |
//! | `intact` | set once the projector caught the view up; missing after Redis lost its data, and then readers fall back to PostgreSQL while the projector rebuilds |
//! | `generation` | the generation readers see (missing: 1); every key above is generation 1's, and generation N > 1 has each under `gN:` (`{catalog}:g2:p:<id>`) |
//! | `generation:version` | the view version the live generation was built with |
//!
//! A rebuild ([`crate::generations`]) writes generation N+1 with pipelines of grouped
//! commands (no script, no invalidation: nobody reads it yet), then one `MULTI` marks it
//! intact and moves the pointer; readers pick the pointer up with the checkpoint they poll
//! and check it in every read's round trip. Generation N is deleted after the grace period
//! (`SCAN` and `UNLINK` in small steps, so Redis never blocks on it).
//!
//! Listings are one `ZRANGE … BYLEX` from the cursor's encoded key, then one `MGET`. A listing
//! over several categories sends one `ZRANGE` per category index in one pipeline and merges
//! the ranges in the reader (each product is in one category, and a member encodes the same
//! key in every index); readers write nothing, not even a temporary union.
//!
//! # Atomic per event
//!
//! Each event is one Lua script: it checks the version the projector read (a concurrent
//! worker's write makes it return 0, and the projector retries), writes the document and the
//! index entries, moves the counts and the checkpoint, and publishes the invalidation on
//! [`invalidation_channel`] — all or nothing, so the checkpoint never covers a write that did
//! not happen, and a cache never misses an invalidation for a write that did.

mod generations;
mod layout;
mod projection;
mod reader;

pub(crate) use generations::{drop_matching, read_live, DROP_STEP};
pub use layout::{
    encode_member, generation_key, invalidation_channel, member_id, Invalidation, Keys, ORDERS,
};
pub(crate) use layout::{
    is_marked, lost_during_fill, mark, mark_filled, read_position, unavailable,
};
pub use projection::product_invalidation;
pub use projection::RedisProjection;
pub use reader::{RedisReadModel, FILTER_SCAN_BUDGET};
