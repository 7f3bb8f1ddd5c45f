//! The PostgreSQL read model against a real server, each case in a database of its own.

use std::sync::Arc;

use projectors::read_model::postgres::{migrate, PostgresReadModel, PostgresReadModelProjection};
use testkit::TestDatabase;

#[tokio::test]
async fn the_postgres_read_model_passes_the_conformance_suite() {
    let databases = std::sync::Mutex::new(Vec::new());
    projectors::read_model::conformance::run(|| async {
        let test = TestDatabase::create().await;
        let pool = test.pool(4).await;
        migrate(&pool).await.expect("migrate");
        databases.lock().expect("lock").push(test);
        let projection = Arc::new(PostgresReadModelProjection::new(pool.clone(), "read-model"));
        let model = Arc::new(PostgresReadModel::new(pool, "read-model"));
        (projection as _, model as _)
    })
    .await;
}
