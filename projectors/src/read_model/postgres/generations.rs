//! The read model's blue/green generations in PostgreSQL: generation N+1 is built in schema
//! `rm_next` (the same four tables, secondary indexes built once after the bulk load), then one
//! transaction moves the live tables to `rm_previous` and the new ones into `public`. Readers'
//! statements name the tables unqualified, so the next statement of every reader (on the
//! primary and, once replayed, on each streaming replica) reads the new generation; PostgreSQL
//! re-plans prepared statements after the change.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use events::Envelope;
use sqlx::postgres::PgPool;
use sqlx::Row;
use uuid::Uuid;

use super::projection::PostgresReadModelProjection;
use crate::generations::{Generations, Live};
use crate::read_model::evolve::{evolve_in_order, RebuildBatch};
use crate::read_model::view::{count_deltas, ProductView};
use crate::{Applied, Projection, ProjectionError};

/// The version of the read model this code builds; raise it when a change of the projection
/// needs the view rebuilt.
pub const READ_MODEL_VERSION: u64 = 1;

/// The tables of one generation.
const TABLES: [&str; 4] = [
    "rm_products",
    "rm_categories",
    "rm_category_counts",
    "rm_checkpoints",
];
const NEXT: &str = "rm_next";
const PREVIOUS: &str = "rm_previous";

fn unavailable(error: sqlx::Error) -> ProjectionError {
    ProjectionError::Unavailable(error.to_string())
}

/// Runs `statements` in one transaction.
async fn run_all(pool: &PgPool, statements: &[String]) -> Result<(), ProjectionError> {
    let mut transaction = pool.begin().await.map_err(unavailable)?;
    for statement in statements {
        sqlx::query(statement)
            .execute(&mut *transaction)
            .await
            .map_err(unavailable)?;
    }
    transaction.commit().await.map_err(unavailable)
}

#[async_trait]
impl Generations for PostgresReadModelProjection {
    fn version(&self) -> u64 {
        READ_MODEL_VERSION
    }

    async fn live(&self) -> Result<Live, ProjectionError> {
        let row = sqlx::query("SELECT generation, version FROM rm_generations WHERE view = $1")
            .bind(self.name())
            .fetch_optional(self.pool())
            .await
            .map_err(unavailable)?;
        Ok(match row {
            Some(row) => Live {
                generation: row.try_get::<i64, _>("generation").map_err(unavailable)? as u64,
                version: row.try_get::<i64, _>("version").map_err(unavailable)? as u64,
            },
            None => Live {
                generation: 1,
                version: 1,
            },
        })
    }

    async fn prepare(&self) -> Result<Arc<dyn Projection>, ProjectionError> {
        // One builder of rm_next at a time, whichever process it runs in: a session lock on a
        // connection of its own, held by the bulk writer and released when the rebuild ends
        // (the connection is closed, not returned to the pool).
        let mut lock = self.pool().acquire().await.map_err(unavailable)?.detach();
        let locked: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('catalog-rebuild:' || $1))")
                .bind(self.name())
                .fetch_one(&mut lock)
                .await
                .map_err(unavailable)?;
        if !locked {
            return Err(ProjectionError::Unavailable(format!(
                "another process is rebuilding the {} view (it holds the rebuild lock); wait \
                 for it to switch, or stop it",
                self.name()
            )));
        }
        let mut statements = vec![
            format!("DROP SCHEMA IF EXISTS {NEXT} CASCADE"),
            format!("CREATE SCHEMA {NEXT}"),
            // Without its secondary indexes (built once the bulk is in: `sealed`).
            format!(
                "CREATE TABLE {NEXT}.rm_products (LIKE public.rm_products INCLUDING DEFAULTS \
                 INCLUDING CONSTRAINTS)"
            ),
            format!("ALTER TABLE {NEXT}.rm_products ADD PRIMARY KEY (id)"),
        ];
        for table in &TABLES[1..] {
            statements.push(format!(
                "CREATE TABLE {NEXT}.{table} (LIKE public.{table} INCLUDING ALL)"
            ));
        }
        run_all(self.pool(), &statements).await?;
        Ok(Arc::new(BulkReadModel {
            pool: self.pool().clone(),
            name: self.name().to_owned(),
            _lock: parking_lot::Mutex::new(lock),
        }))
    }

    async fn sealed(&self) -> Result<(), ProjectionError> {
        // The live table's secondary indexes, as its migrations made them, on the new one; two
        // at a time (one per core of the database).
        let definitions: Vec<String> = sqlx::query_scalar(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' \
             AND tablename = 'rm_products' AND indexname <> 'rm_products_pkey' ORDER BY indexname",
        )
        .fetch_all(self.pool())
        .await
        .map_err(unavailable)?;
        let statements: Vec<String> = definitions
            .iter()
            .map(|definition| {
                definition.replacen(
                    " ON public.rm_products ",
                    &format!(" ON {NEXT}.rm_products "),
                    1,
                )
            })
            .collect();
        let halves = statements.chunks(statements.len().div_ceil(2).max(1));
        let builds = halves.map(|half| {
            let pool = self.pool().clone();
            async move {
                let mut connection = pool.acquire().await.map_err(unavailable)?;
                sqlx::query("SET maintenance_work_mem = '256MB'")
                    .execute(&mut *connection)
                    .await
                    .map_err(unavailable)?;
                for statement in half {
                    sqlx::query(statement)
                        .execute(&mut *connection)
                        .await
                        .map_err(unavailable)?;
                }
                sqlx::query("RESET maintenance_work_mem")
                    .execute(&mut *connection)
                    .await
                    .map_err(unavailable)?;
                Ok::<(), ProjectionError>(())
            }
        });
        futures::future::try_join_all(builds).await?;
        let analyze = format!("ANALYZE {NEXT}.rm_products");
        sqlx::query(&analyze)
            .execute(self.pool())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn switch(&self) -> Result<u64, ProjectionError> {
        let next = self.live().await?.generation + 1;
        let mut statements = vec![
            format!("DROP SCHEMA IF EXISTS {PREVIOUS} CASCADE"),
            format!("CREATE SCHEMA {PREVIOUS}"),
            format!(
                "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
                TABLES.map(|table| format!("public.{table}")).join(", ")
            ),
        ];
        for table in TABLES {
            statements.push(format!("ALTER TABLE public.{table} SET SCHEMA {PREVIOUS}"));
            statements.push(format!("ALTER TABLE {NEXT}.{table} SET SCHEMA public"));
        }
        statements.push(format!("DROP SCHEMA {NEXT}"));
        statements.push(format!(
            "INSERT INTO rm_generations (view, generation, version, switched_at) \
             VALUES ('{name}', {next}, {READ_MODEL_VERSION}, now()) ON CONFLICT (view) DO UPDATE \
             SET generation = EXCLUDED.generation, version = EXCLUDED.version, \
             switched_at = EXCLUDED.switched_at",
            name = self.name().replace('\'', "''"),
        ));
        run_all(self.pool(), &statements).await?;
        Ok(next)
    }

    async fn drop_previous(&self) -> Result<(), ProjectionError> {
        run_all(
            self.pool(),
            &[format!("DROP SCHEMA IF EXISTS {PREVIOUS} CASCADE")],
        )
        .await
    }
}

/// Writes generation N+1 in `rm_next`, a batch per transaction: the batch's products read
/// once, evolved in memory, written with one `INSERT … SELECT FROM UNNEST`.
struct BulkReadModel {
    pool: PgPool,
    name: String,
    /// The connection holding the rebuild lock (see `prepare`).
    _lock: parking_lot::Mutex<sqlx::PgConnection>,
}

/// A product as the batch leaves it, with how many of its events the batch applied.
struct Written {
    before: Option<ProductView>,
    after: ProductView,
    applied: i64,
}

impl BulkReadModel {
    async fn write(&self, envelopes: &[Envelope], checkpoint: u64) -> Result<(), ProjectionError> {
        let batch = RebuildBatch::decode(envelopes)?;
        let ids = batch.product_ids();
        let mut transaction = self.pool.begin().await.map_err(unavailable)?;
        super::projection::relaxed_commit(&mut transaction).await?;
        let rows = sqlx::query(&format!(
            "SELECT id, doc FROM {NEXT}.rm_products WHERE id = ANY($1)"
        ))
        .bind(&ids)
        .fetch_all(&mut *transaction)
        .await
        .map_err(unavailable)?;
        let mut products: HashMap<Uuid, Written> = HashMap::with_capacity(ids.len());
        for row in rows {
            let doc: sqlx::types::Json<ProductView> = row.try_get("doc").map_err(unavailable)?;
            products.insert(
                row.try_get("id").map_err(unavailable)?,
                Written {
                    before: Some(doc.0.clone()),
                    after: doc.0,
                    applied: 0,
                },
            );
        }
        for (envelope, event) in batch.products {
            let entry = products.get(&envelope.aggregate_id);
            if let Some(product) =
                evolve_in_order(entry.map(|written| &written.after), envelope, event)?
            {
                let entry = products.entry(envelope.aggregate_id).or_insert(Written {
                    before: None,
                    after: product.clone(),
                    applied: 0,
                });
                entry.after = product;
                entry.applied += 1;
            }
        }
        self.write_products(&mut transaction, &products).await?;
        for (aggregate_id, version, created) in batch.categories {
            sqlx::query(&format!(
                "INSERT INTO {NEXT}.rm_categories (slug, aggregate_id, version, name, parent) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"
            ))
            .bind(&created.slug)
            .bind(aggregate_id)
            .bind(version as i64)
            .bind(&created.name)
            .bind(&created.parent)
            .execute(&mut *transaction)
            .await
            .map_err(unavailable)?;
        }
        sqlx::query(&format!(
            "INSERT INTO {NEXT}.rm_checkpoints (projection, position) VALUES ($1, $2) \
             ON CONFLICT (projection) DO UPDATE \
             SET position = GREATEST({NEXT}.rm_checkpoints.position, EXCLUDED.position)"
        ))
        .bind(&self.name)
        .bind(checkpoint as i64)
        .execute(&mut *transaction)
        .await
        .map_err(unavailable)?;
        transaction.commit().await.map_err(unavailable)
    }

    async fn write_products(
        &self,
        transaction: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        products: &HashMap<Uuid, Written>,
    ) -> Result<(), ProjectionError> {
        let changed: Vec<&Written> = products.values().filter(|w| w.applied > 0).collect();
        if changed.is_empty() {
            return Ok(());
        }
        let mut counts: HashMap<String, i64> = HashMap::new();
        for written in &changed {
            for (category, delta) in count_deltas(written.before.as_ref(), &written.after) {
                *counts.entry(category).or_default() += delta;
            }
        }
        let column = |f: &dyn Fn(&ProductView) -> i64| -> Vec<i64> {
            changed.iter().map(|w| f(&w.after)).collect()
        };
        let docs: Vec<String> = changed
            .iter()
            .map(|w| serde_json::to_string(&w.after))
            .collect::<Result<_, _>>()
            .map_err(|error| ProjectionError::Unavailable(error.to_string()))?;
        sqlx::query(&format!(
            "INSERT INTO {NEXT}.rm_products (id, version, events_applied, status, category, \
             brand_key, price_cents, stock, sales, newest_key, name_key, doc) \
             SELECT id, version, applied, status, category, brand_key, price_cents, stock, sales, \
             newest_key, name_key, doc::jsonb FROM UNNEST($1::uuid[], $2::int8[], $3::int8[], \
             $4::text[], $5::text[], $6::text[], $7::int8[], $8::int8[], $9::int8[], $10::int8[], \
             $11::text[], $12::text[]) AS t(id, version, applied, status, category, brand_key, \
             price_cents, stock, sales, newest_key, name_key, doc) \
             ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, \
             events_applied = rm_products.events_applied + EXCLUDED.events_applied, \
             status = EXCLUDED.status, category = EXCLUDED.category, \
             brand_key = EXCLUDED.brand_key, price_cents = EXCLUDED.price_cents, \
             stock = EXCLUDED.stock, sales = EXCLUDED.sales, newest_key = EXCLUDED.newest_key, \
             name_key = EXCLUDED.name_key, doc = EXCLUDED.doc"
        ))
        .bind(changed.iter().map(|w| w.after.id).collect::<Vec<_>>())
        .bind(column(&|p| p.version as i64))
        .bind(changed.iter().map(|w| w.applied).collect::<Vec<_>>())
        .bind(
            changed
                .iter()
                .map(|w| w.after.status.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            changed
                .iter()
                .map(|w| w.after.category.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            changed
                .iter()
                .map(|w| w.after.brand.as_ref().map(|brand| brand.to_lowercase()))
                .collect::<Vec<_>>(),
        )
        .bind(column(&|p| p.price_cents))
        .bind(column(&|p| p.stock))
        .bind(column(&|p| p.sales))
        .bind(column(&|p| -p.created_at.timestamp_micros()))
        .bind(
            changed
                .iter()
                .map(|w| w.after.name.to_lowercase())
                .collect::<Vec<_>>(),
        )
        .bind(docs)
        .execute(&mut **transaction)
        .await
        .map_err(unavailable)?;
        for (category, delta) in counts.into_iter().filter(|(_, delta)| *delta != 0) {
            sqlx::query(&format!(
                "INSERT INTO {NEXT}.rm_category_counts (category, products) VALUES ($1, $2) \
                 ON CONFLICT (category) DO UPDATE \
                 SET products = {NEXT}.rm_category_counts.products + EXCLUDED.products"
            ))
            .bind(category)
            .bind(delta)
            .execute(&mut **transaction)
            .await
            .map_err(unavailable)?;
        }
        Ok(())
    }
}

#[async_trait]
impl Projection for BulkReadModel {
    fn name(&self) -> &str {
        &self.name
    }

    async fn apply(
        &self,
        envelope: &Envelope,
        checkpoint: u64,
    ) -> Result<Applied, ProjectionError> {
        self.write(std::slice::from_ref(envelope), checkpoint)
            .await?;
        Ok(Applied::Applied)
    }

    async fn apply_batch(
        &self,
        envelopes: &[Envelope],
        checkpoint: u64,
    ) -> Result<(), ProjectionError> {
        self.write(envelopes, checkpoint).await
    }

    async fn checkpoint(&self) -> Result<u64, ProjectionError> {
        let position: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT position FROM {NEXT}.rm_checkpoints WHERE projection = $1"
        ))
        .bind(&self.name)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(position.unwrap_or(0) as u64)
    }

    async fn advance(&self, checkpoint: u64) -> Result<(), ProjectionError> {
        self.write(&[], checkpoint).await
    }
}
