//! The PostgreSQL read model against a real server, each case in a database of its own.

use std::sync::Arc;

use projectors::read_model::postgres::{migrate, PostgresReadModel, PostgresReadModelProjection};
use testkit::TestDatabase;

projectors::read_model_conformance_suite!(keeping async {
    let test = TestDatabase::create().await;
    let pool = test.pool(4).await;
    migrate(&pool).await.expect("migrate");
    let projection = Arc::new(PostgresReadModelProjection::new(pool.clone(), "read-model"));
    let model = Arc::new(PostgresReadModel::new(pool, "read-model"));
    ((projection as _, model as _), test)
});
