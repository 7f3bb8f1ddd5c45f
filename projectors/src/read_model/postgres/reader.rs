//! Reads the PostgreSQL read model, normally through a streaming replica.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgPool;
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::projection::read_checkpoint;
use crate::read_model::polled::PolledWatermark;
use crate::read_model::port::{CatalogReadModel, MinPosition, ReadModelError};
use crate::read_model::view::{CategoryView, KeyPart, ListQuery, Page, ProductView, SortOrder};

/// Reads the read model (through `pool`, normally a replica); see the module documentation.
pub struct PostgresReadModel {
    pool: PgPool,
    /// The projection's checkpoint as the replica shows it.
    position: PolledWatermark,
}

impl PostgresReadModel {
    /// Reads the tables of the projection named `projection` through `pool`.
    pub fn new(pool: PgPool, projection: &str) -> Self {
        let polled_pool = pool.clone();
        let projection = projection.to_owned();
        let position = PolledWatermark::spawn(move || {
            let pool = polled_pool.clone();
            let projection = projection.clone();
            async move {
                read_checkpoint(&pool, &projection)
                    .await
                    .inspect_err(
                        |error| tracing::debug!(%error, "cannot read the read model's checkpoint"),
                    )
                    .ok()
            }
        });
        PostgresReadModel { pool, position }
    }

    fn map_error(error: sqlx::Error) -> ReadModelError {
        ReadModelError::Unavailable(error.to_string())
    }

    fn decode(row: &sqlx::postgres::PgRow) -> Result<Arc<ProductView>, ReadModelError> {
        let doc: Json<ProductView> = row.try_get("doc").map_err(Self::map_error)?;
        Ok(Arc::new(doc.0))
    }

    /// One product document; only a published one when `published_only`.
    async fn document(
        &self,
        id: Uuid,
        published_only: bool,
    ) -> Result<(Option<Arc<ProductView>>, u64), ReadModelError> {
        metrics::counter!("catalog_read_model_queries_total", "model" => "postgres", "query" => "product")
            .increment(1);
        let position = self.position();
        let sql = if published_only {
            "SELECT doc FROM rm_products WHERE id = $1 AND status = 'published'"
        } else {
            "SELECT doc FROM rm_products WHERE id = $1"
        };
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(Self::map_error)?;
        let product = row.as_ref().map(Self::decode).transpose()?;
        Ok((product, position))
    }
}

/// The listing query of `query`: its filters, its cursor, one more row than its limit.
fn listing_sql(query: &ListQuery) -> QueryBuilder<'_, Postgres> {
    let key = key_expression(query.sort);
    let mut sql =
        QueryBuilder::<Postgres>::new("SELECT doc FROM rm_products WHERE status = 'published'");
    // One category keeps the plain equality, so the per-category indexes still deliver rows
    // in listing order; several are one bound array.
    match query.categories.as_slice() {
        [] => {}
        [category] => {
            sql.push(" AND category = ").push_bind(category.clone());
        }
        categories => {
            sql.push(" AND category = ANY(")
                .push_bind(categories.to_vec())
                .push(")");
        }
    }
    if !query.brands.is_empty() {
        let keys: Vec<String> = query.brands.iter().map(|b| b.to_lowercase()).collect();
        sql.push(" AND brand_key = ANY(").push_bind(keys).push(")");
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
    sql
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
    async fn product(
        &self,
        id: Uuid,
        _at: MinPosition,
    ) -> Result<(Option<Arc<ProductView>>, u64), ReadModelError> {
        self.document(id, true).await
    }

    async fn product_any_status(
        &self,
        id: Uuid,
        _at: MinPosition,
    ) -> Result<(Option<Arc<ProductView>>, u64), ReadModelError> {
        self.document(id, false).await
    }

    async fn list(&self, query: &ListQuery, _at: MinPosition) -> Result<Page, ReadModelError> {
        metrics::counter!("catalog_read_model_queries_total", "model" => "postgres", "query" => "list")
            .increment(1);
        let position = self.position();
        let rows = listing_sql(query)
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(Self::map_error)?;
        let items = rows
            .iter()
            .map(Self::decode)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::cut(items, query, position))
    }

    async fn categories(
        &self,
        _at: MinPosition,
    ) -> Result<(Vec<CategoryView>, u64), ReadModelError> {
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
        self.position.current()
    }

    async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        self.position.wait_for(position, timeout).await
    }
}
