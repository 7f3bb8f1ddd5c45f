//! Blue/green generations of the Redis views (see [`crate::generations`] and the layout in
//! [`crate::redis`]): generation N+1 is written under `gN+1:` keys with grouped pipelines,
//! then one `MULTI` marks it intact and moves the pointer key.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_trait::async_trait;
use events::Envelope;
use redis::Script;
use uuid::Uuid;

use super::layout::{
    generation_key, generation_version_key, invalidation_channel, unavailable, Invalidation, Keys,
    StoredCategory,
};
use super::projection::{entries, RedisProjection};
use crate::generations::{Generations, Live};
use crate::read_model::evolve::{evolve_in_order, RebuildBatch};
use crate::read_model::view::{count_deltas, ProductView};
use crate::{Applied, Projection, ProjectionError};

/// The version of the Redis views this code builds (raise it when a change of the projection
/// needs them rebuilt).
pub const REDIS_VIEW_VERSION: u64 = 1;

/// How many keys one step of a generation's deletion looks at.
pub(crate) const DROP_STEP: usize = 2_000;

/// One step of deleting the keys that match a pattern: `SCAN` from a cursor, `UNLINK` what it
/// found, return the next cursor (0 when done). KEYS[1] only routes the script to the view's
/// slot (every key of the view is under its hash tag).
const DROP_STEP_SCRIPT: &str = r#"
local reply = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
if #reply[2] > 0 then redis.call('UNLINK', unpack(reply[2])) end
return tonumber(reply[1])
"#;

/// The live generation and its version, as the keys `generation` and `version` say (1 and 1
/// before any rebuild).
pub(crate) async fn read_live(
    connection: &redis_client::RedisConnection,
    generation: String,
    version: String,
) -> Result<Live, ProjectionError> {
    let mut connection = connection.clone();
    let (generation, version): (Option<u64>, Option<u64>) = redis::pipe()
        .cmd("GET")
        .arg(generation)
        .cmd("GET")
        .arg(version)
        .query_async(&mut connection)
        .await
        .map_err(unavailable)?;
    Ok(Live {
        generation: generation.unwrap_or(1),
        version: version.unwrap_or(1),
    })
}

/// Deletes every key matching `pattern` (under the view's hash tag), [`DROP_STEP`] keys at a
/// time; `route` is any key of the view, naming its slot for the script.
pub(crate) async fn drop_matching(
    connection: &redis_client::RedisConnection,
    route: &str,
    pattern: &str,
) -> Result<(), ProjectionError> {
    let script = Script::new(DROP_STEP_SCRIPT);
    let mut connection = connection.clone();
    let mut cursor: u64 = 0;
    loop {
        cursor = script
            .key(route)
            .arg(cursor)
            .arg(pattern)
            .arg(DROP_STEP)
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        if cursor == 0 {
            return Ok(());
        }
    }
}

impl RedisProjection {
    /// Deletes every key of `generation`, a step at a time.
    async fn drop_generation(&self, generation: u64) -> Result<(), ProjectionError> {
        let keys = Keys::new(self.config.clone(), generation);
        let (patterns, singles) = keys.all();
        let route = generation_key(&self.config);
        for pattern in patterns {
            drop_matching(&self.connection, &route, &pattern).await?;
        }
        let mut connection = self.connection.clone();
        let _: i64 = redis::cmd("UNLINK")
            .arg(&singles[..])
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl Generations for RedisProjection {
    fn version(&self) -> u64 {
        REDIS_VIEW_VERSION
    }

    async fn live(&self) -> Result<Live, ProjectionError> {
        read_live(
            &self.connection,
            generation_key(&self.config),
            generation_version_key(&self.config),
        )
        .await
    }

    async fn prepare(&self) -> Result<Arc<dyn Projection>, ProjectionError> {
        let next = self.live().await?.generation + 1;
        self.drop_generation(next).await?;
        Ok(Arc::new(NextGeneration(RedisProjection::writing(
            self.config.clone(),
            self.connection.clone(),
            &self.name,
            next,
        ))))
    }

    async fn switch(&self) -> Result<u64, ProjectionError> {
        let next = self.live().await?.generation + 1;
        let keys = Keys::new(self.config.clone(), next);
        let mut connection = self.connection.clone();
        let checkpoint: Option<u64> = redis::cmd("GET")
            .arg(keys.key("checkpoint"))
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        let message = self.message(&Invalidation::categories(checkpoint.unwrap_or(0)));
        let _: () = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(keys.key("intact"))
            .arg(1)
            .ignore()
            .cmd("SET")
            .arg(generation_key(&self.config))
            .arg(next)
            .ignore()
            .cmd("SET")
            .arg(generation_version_key(&self.config))
            .arg(REDIS_VIEW_VERSION)
            .ignore()
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        self.generation.store(next, Ordering::SeqCst);
        // Apart from the MULTI: a cluster routes a transaction by its keys, and a channel is
        // not one of the view's slot.
        let _: i64 = redis::cmd("PUBLISH")
            .arg(invalidation_channel(&self.config))
            .arg(message)
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(next)
    }

    async fn drop_previous(&self) -> Result<(), ProjectionError> {
        let live = self.live().await?.generation;
        if live > 1 {
            self.drop_generation(live - 1).await?;
        }
        Ok(())
    }
}

/// Writes a generation being rebuilt: nobody reads it until the switch, so a batch is a few
/// pipelined commands (one `MGET` of the batch's products, then one `MSET` of their documents
/// and versions, one `ZREM` and one `ZADD` per index, the count moves and the checkpoint)
/// rather than a script per event, and nothing is announced.
struct NextGeneration(RedisProjection);

/// A product as the batch found it and leaves it.
struct Written {
    before: Option<ProductView>,
    after: ProductView,
}

#[async_trait]
impl Projection for NextGeneration {
    fn name(&self) -> &str {
        self.0.name()
    }

    async fn apply(
        &self,
        envelope: &Envelope,
        checkpoint: u64,
    ) -> Result<Applied, ProjectionError> {
        self.0.apply(envelope, checkpoint).await
    }

    async fn checkpoint(&self) -> Result<u64, ProjectionError> {
        self.0.checkpoint().await
    }

    async fn advance(&self, checkpoint: u64) -> Result<(), ProjectionError> {
        self.0.advance(checkpoint).await
    }

    async fn apply_batch(
        &self,
        envelopes: &[Envelope],
        checkpoint: u64,
    ) -> Result<(), ProjectionError> {
        let keys = self.0.keys().await?;
        let batch = RebuildBatch::decode(envelopes)?;
        let mut products = self.stored(&keys, &batch.product_ids()).await?;
        for (envelope, event) in batch.products {
            let id = envelope.aggregate_id;
            let current = products.get(&id).and_then(|w| w.as_ref()).map(|w| &w.after);
            if let Some(product) = evolve_in_order(current, envelope, event)? {
                let entry = products.entry(id).or_insert(None);
                match entry {
                    Some(written) => written.after = product,
                    None => {
                        *entry = Some(Written {
                            before: None,
                            after: product,
                        })
                    }
                }
            }
        }
        let categories = batch.categories;
        self.write(&keys, products, categories, checkpoint).await
    }
}

impl NextGeneration {
    /// The batch's products as the generation holds them (`None`: not there yet), read in one
    /// `MGET`.
    async fn stored(
        &self,
        keys: &Keys,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Option<Written>>, ProjectionError> {
        let mut products = HashMap::with_capacity(ids.len());
        if ids.is_empty() {
            return Ok(products);
        }
        let mut connection = self.0.connection.clone();
        let texts: Vec<Option<String>> = redis::cmd("MGET")
            .arg(
                ids.iter()
                    .map(|id| keys.key(&format!("p:{id}")))
                    .collect::<Vec<_>>(),
            )
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        for (id, text) in ids.iter().copied().zip(texts) {
            let written = match text {
                Some(text) => {
                    let view: ProductView = serde_json::from_str(&text).map_err(|error| {
                        ProjectionError::Unavailable(format!(
                            "stored product {id} is not a product: {error}"
                        ))
                    })?;
                    Some(Written {
                        before: Some(view.clone()),
                        after: view,
                    })
                }
                None => None,
            };
            products.insert(id, written);
        }
        Ok(products)
    }

    /// Writes what the batch changed, grouped per key, in one pipeline.
    async fn write(
        &self,
        keys: &Keys,
        products: HashMap<Uuid, Option<Written>>,
        categories: Vec<(Uuid, u64, events::CategoryCreated)>,
        checkpoint: u64,
    ) -> Result<(), ProjectionError> {
        let mut documents: Vec<(String, String)> = Vec::new();
        let mut removed: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut added: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for written in products.into_values().flatten() {
            let Written { before, after } = written;
            if before.as_ref().is_some_and(|b| b.version == after.version) {
                continue;
            }
            let id = after.id;
            let old = before
                .as_ref()
                .map(|view| entries(keys, view))
                .unwrap_or_default();
            let new = entries(keys, &after);
            for entry in old.iter().filter(|entry| !new.contains(entry)) {
                removed
                    .entry(entry.0.clone())
                    .or_default()
                    .push(entry.1.clone());
            }
            for entry in new.iter().filter(|entry| !old.contains(entry)) {
                added
                    .entry(entry.0.clone())
                    .or_default()
                    .push(entry.1.clone());
            }
            for (category, delta) in count_deltas(before.as_ref(), &after) {
                *counts.entry(category).or_default() += delta;
            }
            documents.push((keys.key(&format!("v:{id}")), after.version.to_string()));
            let document = serde_json::to_string(&after)
                .map_err(|error| ProjectionError::Unavailable(error.to_string()))?;
            documents.push((keys.key(&format!("p:{id}")), document));
        }
        let mut pipe = redis::pipe();
        if !documents.is_empty() {
            pipe.cmd("MSET").arg(&documents).ignore();
        }
        for (key, members) in &removed {
            pipe.cmd("ZREM").arg(key).arg(members).ignore();
        }
        for (key, members) in &added {
            let scored: Vec<(u8, &String)> = members.iter().map(|member| (0, member)).collect();
            pipe.cmd("ZADD").arg(key).arg(scored).ignore();
        }
        for (category, delta) in counts.iter().filter(|(_, delta)| **delta != 0) {
            pipe.cmd("HINCRBY")
                .arg(keys.key("counts"))
                .arg(category)
                .arg(*delta)
                .ignore();
        }
        for (id, version, created) in categories {
            let stored = StoredCategory {
                slug: created.slug.clone(),
                name: created.name,
                parent: created.parent,
            };
            let json = serde_json::to_string(&stored)
                .map_err(|error| ProjectionError::Unavailable(error.to_string()))?;
            pipe.cmd("HSETNX")
                .arg(keys.key("categories"))
                .arg(&created.slug)
                .arg(json)
                .ignore();
            pipe.cmd("SET")
                .arg(keys.key(&format!("cv:{id}")))
                .arg(version)
                .ignore();
        }
        pipe.cmd("SET")
            .arg(keys.key("checkpoint"))
            .arg(checkpoint)
            .ignore();
        let mut connection = self.0.connection.clone();
        let _: () = pipe
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
