//! The distributed read model: PostgreSQL tables written by the read-model projector on the
//! primary ([`PostgresReadModelProjection`]) and read by query-api replicas, normally through
//! a streaming replica ([`PostgresReadModel`]).
//!
//! Each event is applied in one transaction that also moves the projection's checkpoint, so a
//! crash leaves rows and checkpoint in step. The row update is guarded by the version that was
//! read (`WHERE version = $read`), so two projector workers racing on one product (possible
//! for a moment during a consumer-group rebalance) cannot both apply an event.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use events::{CatalogEvent, Envelope, ProductStatus};
use sqlx::postgres::PgPool;
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder, Row, Transaction};
use tokio::sync::watch;
use uuid::Uuid;

use super::{
    evolve, CatalogReadModel, CategoryView, Cursor, Evolved, KeyPart, ListQuery, Page, ProductView,
    ReadModelError, SortOrder,
};
use crate::{Applied, Projection, ProjectionError};

/// Applies the read model's migrations (`projectors/migrations-postgres`). Other components
/// share the database, so versions this migrator does not know are not an error.
pub async fn migrate(pool: &PgPool) -> Result<(), ProjectionError> {
    let mut migrator = sqlx::migrate!("./migrations-postgres");
    migrator.set_ignore_missing(true);
    migrator
        .run(pool)
        .await
        .map_err(|error| ProjectionError::Unavailable(format!("read model migrations: {error}")))
}

fn unavailable(error: sqlx::Error) -> ProjectionError {
    ProjectionError::Unavailable(error.to_string())
}

/// Writes the read model; see the module documentation.
pub struct PostgresReadModelProjection {
    pool: PgPool,
    name: String,
}

impl PostgresReadModelProjection {
    /// The projection named `name` (its checkpoint row and its consumer group).
    pub fn new(pool: PgPool, name: &str) -> Self {
        PostgresReadModelProjection {
            pool,
            name: name.to_owned(),
        }
    }

    async fn save_checkpoint(
        &self,
        transaction: &mut Transaction<'_, Postgres>,
        checkpoint: u64,
    ) -> Result<(), ProjectionError> {
        sqlx::query(
            "INSERT INTO rm_checkpoints (projection, position) VALUES ($1, $2) \
             ON CONFLICT (projection) DO UPDATE \
             SET position = GREATEST(rm_checkpoints.position, EXCLUDED.position)",
        )
        .bind(&self.name)
        .bind(checkpoint as i64)
        .execute(&mut **transaction)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn apply_product(
        &self,
        transaction: &mut Transaction<'_, Postgres>,
        envelope: &Envelope,
        event: CatalogEvent,
    ) -> Result<Applied, ProjectionError> {
        let current: Option<Json<ProductView>> =
            sqlx::query_scalar("SELECT doc FROM rm_products WHERE id = $1 FOR UPDATE")
                .bind(envelope.aggregate_id)
                .fetch_optional(&mut **transaction)
                .await
                .map_err(unavailable)?;
        let current = current.map(|json| json.0);
        let product = match evolve(current.as_ref(), envelope, event) {
            Evolved::Changed(product) => product,
            Evolved::Unchanged(applied) => return Ok(applied),
        };
        let read_version = current.as_ref().map_or(0, |view| view.version as i64);
        let written = sqlx::query(
            "INSERT INTO rm_products (id, version, events_applied, status, category, brand_key, \
             price_cents, stock, sales, newest_key, name_key, doc) \
             VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, \
             events_applied = rm_products.events_applied + 1, status = EXCLUDED.status, \
             category = EXCLUDED.category, brand_key = EXCLUDED.brand_key, \
             price_cents = EXCLUDED.price_cents, stock = EXCLUDED.stock, sales = EXCLUDED.sales, \
             newest_key = EXCLUDED.newest_key, name_key = EXCLUDED.name_key, doc = EXCLUDED.doc \
             WHERE rm_products.version = $12",
        )
        .bind(product.id)
        .bind(product.version as i64)
        .bind(product.status.as_str())
        .bind(&product.category)
        .bind(product.brand.as_ref().map(|brand| brand.to_lowercase()))
        .bind(product.price_cents)
        .bind(product.stock)
        .bind(product.sales)
        .bind(-product.created_at.timestamp_micros())
        .bind(product.name.to_lowercase())
        .bind(Json(&product))
        .bind(read_version)
        .execute(&mut **transaction)
        .await
        .map_err(unavailable)?
        .rows_affected();
        if written == 0 {
            // Another worker applied this product in between: retry, which then finds it
            // applied.
            return Err(ProjectionError::Unavailable(
                "a concurrent projector updated the product; retrying".into(),
            ));
        }
        let was = current
            .as_ref()
            .filter(|view| view.status == ProductStatus::Published)
            .map(|view| view.category.clone());
        let now = (product.status == ProductStatus::Published).then(|| product.category.clone());
        if was != now {
            for (category, delta) in [(was, -1_i64), (now, 1)] {
                let Some(category) = category else { continue };
                sqlx::query(
                    "INSERT INTO rm_category_counts (category, products) VALUES ($1, $2) \
                     ON CONFLICT (category) DO UPDATE \
                     SET products = rm_category_counts.products + EXCLUDED.products",
                )
                .bind(category)
                .bind(delta)
                .execute(&mut **transaction)
                .await
                .map_err(unavailable)?;
            }
        }
        Ok(Applied::Applied)
    }

    async fn apply_category(
        &self,
        transaction: &mut Transaction<'_, Postgres>,
        envelope: &Envelope,
        created: events::CategoryCreated,
    ) -> Result<Applied, ProjectionError> {
        let version: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM rm_categories WHERE aggregate_id = $1 FOR UPDATE",
        )
        .bind(envelope.aggregate_id)
        .fetch_optional(&mut **transaction)
        .await
        .map_err(unavailable)?;
        let applied = version.unwrap_or(0) as u64;
        if envelope.aggregate_version <= applied {
            return Ok(Applied::Duplicate);
        }
        if envelope.aggregate_version > applied + 1 {
            return Ok(Applied::Gap {
                applied_version: applied,
            });
        }
        let inserted = sqlx::query(
            "INSERT INTO rm_categories (slug, aggregate_id, version, name, parent) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&created.slug)
        .bind(envelope.aggregate_id)
        .bind(envelope.aggregate_version as i64)
        .bind(&created.name)
        .bind(&created.parent)
        .execute(&mut **transaction)
        .await
        .map_err(unavailable)?
        .rows_affected();
        if inserted == 0 {
            return Err(ProjectionError::Unavailable(
                "a concurrent projector created the category; retrying".into(),
            ));
        }
        Ok(Applied::Applied)
    }
}

#[async_trait]
impl Projection for PostgresReadModelProjection {
    fn name(&self) -> &str {
        &self.name
    }

    async fn apply(
        &self,
        envelope: &Envelope,
        checkpoint: u64,
    ) -> Result<Applied, ProjectionError> {
        let mut transaction = self.pool.begin().await.map_err(unavailable)?;
        let applied = match crate::decode_event(envelope)? {
            Some(CatalogEvent::CategoryCreated(created)) => {
                self.apply_category(&mut transaction, envelope, created)
                    .await?
            }
            Some(product_event) => {
                self.apply_product(&mut transaction, envelope, product_event)
                    .await?
            }
            None => Applied::Duplicate,
        };
        if matches!(applied, Applied::Gap { .. }) {
            // Nothing changed; the runner applies the missing versions and comes back.
            transaction.rollback().await.map_err(unavailable)?;
            return Ok(applied);
        }
        self.save_checkpoint(&mut transaction, checkpoint).await?;
        transaction.commit().await.map_err(unavailable)?;
        Ok(applied)
    }

    async fn checkpoint(&self) -> Result<u64, ProjectionError> {
        read_checkpoint(&self.pool, &self.name)
            .await
            .map_err(unavailable)
    }
}

async fn read_checkpoint(pool: &PgPool, name: &str) -> Result<u64, sqlx::Error> {
    let position: Option<i64> =
        sqlx::query_scalar("SELECT position FROM rm_checkpoints WHERE projection = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?;
    Ok(position.unwrap_or(0) as u64)
}

/// Reads the read model (through `pool`, normally a replica); see the module documentation.
pub struct PostgresReadModel {
    pool: PgPool,
    position: watch::Sender<u64>,
    waiters: Arc<AtomicUsize>,
    wake: Arc<tokio::sync::Notify>,
    refresher: tokio::task::JoinHandle<()>,
}

impl Drop for PostgresReadModel {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

/// How often the checkpoint is read while nobody waits for a position, and while someone does.
const IDLE_REFRESH: Duration = Duration::from_millis(100);
const WAITING_REFRESH: Duration = Duration::from_millis(5);

impl PostgresReadModel {
    /// Reads the tables of the projection named `projection` through `pool`.
    pub fn new(pool: PgPool, projection: &str) -> Self {
        let (position, _) = watch::channel(0);
        let waiters = Arc::new(AtomicUsize::new(0));
        let wake = Arc::new(tokio::sync::Notify::new());
        let refresher = tokio::spawn(refresh_position(
            pool.clone(),
            projection.to_owned(),
            position.clone(),
            waiters.clone(),
            wake.clone(),
        ));
        PostgresReadModel {
            pool,
            position,
            waiters,
            wake,
            refresher,
        }
    }

    fn map_error(error: sqlx::Error) -> ReadModelError {
        ReadModelError::Unavailable(error.to_string())
    }

    fn decode(row: &sqlx::postgres::PgRow) -> Result<Arc<ProductView>, ReadModelError> {
        let doc: Json<ProductView> = row
            .try_get("doc")
            .map_err(|error| ReadModelError::Unavailable(error.to_string()))?;
        Ok(Arc::new(doc.0))
    }
}

async fn refresh_position(
    pool: PgPool,
    projection: String,
    position: watch::Sender<u64>,
    waiters: Arc<AtomicUsize>,
    wake: Arc<tokio::sync::Notify>,
) {
    loop {
        match read_checkpoint(&pool, &projection).await {
            Ok(read) => {
                position.send_if_modified(|current| {
                    let moved = read > *current;
                    *current = (*current).max(read);
                    moved
                });
            }
            Err(error) => tracing::debug!(%error, "cannot read the read model's checkpoint"),
        }
        let pause = if waiters.load(Ordering::Relaxed) > 0 {
            WAITING_REFRESH
        } else {
            IDLE_REFRESH
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = wake.notified() => {}
        }
    }
}

fn key_expression(sort: SortOrder) -> &'static str {
    match sort {
        SortOrder::Newest => "newest_key",
        SortOrder::PriceAsc => "price_cents",
        SortOrder::PriceDesc => "(-price_cents)",
        SortOrder::Bestselling => "(-sales)",
        SortOrder::Name => "name_key",
    }
}

#[async_trait]
impl CatalogReadModel for PostgresReadModel {
    async fn product(&self, id: Uuid) -> Result<(Option<Arc<ProductView>>, u64), ReadModelError> {
        metrics::counter!("catalog_read_model_queries_total", "model" => "postgres", "query" => "product")
            .increment(1);
        let position = self.position();
        let row = sqlx::query("SELECT doc FROM rm_products WHERE id = $1 AND status = 'published'")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(Self::map_error)?;
        let product = row.as_ref().map(Self::decode).transpose()?;
        Ok((product, position))
    }

    async fn product_any_status(
        &self,
        id: Uuid,
    ) -> Result<(Option<Arc<ProductView>>, u64), ReadModelError> {
        metrics::counter!("catalog_read_model_queries_total", "model" => "postgres", "query" => "product")
            .increment(1);
        let position = self.position();
        let row = sqlx::query("SELECT doc FROM rm_products WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(Self::map_error)?;
        let product = row.as_ref().map(Self::decode).transpose()?;
        Ok((product, position))
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, ReadModelError> {
        metrics::counter!("catalog_read_model_queries_total", "model" => "postgres", "query" => "list")
            .increment(1);
        let position = self.position();
        let key = key_expression(query.sort);
        let mut sql =
            QueryBuilder::<Postgres>::new("SELECT doc FROM rm_products WHERE status = 'published'");
        if let Some(category) = &query.category {
            sql.push(" AND category = ").push_bind(category);
        }
        if let Some(brand) = &query.brand {
            sql.push(" AND brand_key = ")
                .push_bind(brand.to_lowercase());
        }
        if let Some(min) = query.min_price {
            sql.push(" AND price_cents >= ").push_bind(min);
        }
        if let Some(max) = query.max_price {
            sql.push(" AND price_cents <= ").push_bind(max);
        }
        if query.in_stock {
            sql.push(" AND stock > 0");
        }
        if let Some(after) = &query.after {
            sql.push(format!(" AND ({key}, id) > ("));
            match &after.part {
                KeyPart::Int(value) => sql.push_bind(*value).push("::bigint"),
                KeyPart::Text(value) => sql.push_bind(value.clone()).push("::text COLLATE \"C\""),
            };
            sql.push(", ").push_bind(after.id).push(")");
        }
        sql.push(format!(" ORDER BY {key}, id LIMIT "))
            .push_bind(query.limit as i64 + 1);
        let rows = sql
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(Self::map_error)?;
        let mut items = rows
            .iter()
            .map(Self::decode)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if items.len() > query.limit {
            items.truncate(query.limit);
            items.last().map(|last| Cursor {
                sort: query.sort,
                after: query.sort.key(last),
            })
        } else {
            None
        };
        Ok(Page {
            items,
            next_cursor,
            position,
        })
    }

    async fn bestsellers(
        &self,
        category: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Arc<ProductView>>, u64), ReadModelError> {
        let page = self
            .list(&ListQuery {
                category: category.map(str::to_owned),
                brand: None,
                min_price: None,
                max_price: None,
                in_stock: false,
                sort: SortOrder::Bestselling,
                limit,
                after: None,
            })
            .await?;
        Ok((page.items, page.position))
    }

    async fn categories(&self) -> Result<(Vec<CategoryView>, u64), ReadModelError> {
        let position = self.position();
        let rows = sqlx::query(
            "SELECT c.slug, c.name, c.parent, COALESCE(n.products, 0) AS products \
             FROM rm_categories c LEFT JOIN rm_category_counts n ON n.category = c.slug \
             ORDER BY c.slug",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(Self::map_error)?;
        let categories = rows
            .iter()
            .map(|row| {
                Ok(CategoryView {
                    slug: row.try_get("slug").map_err(Self::map_error)?,
                    name: row.try_get("name").map_err(Self::map_error)?,
                    parent: row.try_get("parent").map_err(Self::map_error)?,
                    product_count: row
                        .try_get::<i64, _>("products")
                        .map_err(Self::map_error)?
                        .max(0) as u64,
                })
            })
            .collect::<Result<Vec<_>, ReadModelError>>()?;
        Ok((categories, position))
    }

    fn position(&self) -> u64 {
        *self.position.borrow()
    }

    async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        if self.position() >= position {
            return true;
        }
        self.waiters.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
        let mut receiver = self.position.subscribe();
        let reached =
            tokio::time::timeout(timeout, receiver.wait_for(|current| *current >= position)).await;
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        matches!(reached, Ok(Ok(_)))
    }
}
