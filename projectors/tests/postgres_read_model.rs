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

/// Two projector processes asked to rebuild the same view: the second cannot build `rm_next`
/// while the first holds it, and can once the first's rebuild is over.
#[tokio::test]
async fn one_process_at_a_time_builds_the_next_generation() {
    use projectors::Projection;

    let test = TestDatabase::create().await;
    let pool = test.pool(4).await;
    migrate(&pool).await.expect("migrate");
    let first = PostgresReadModelProjection::new(pool.clone(), "read-model");
    let second = PostgresReadModelProjection::new(test.pool(4).await, "read-model");
    let building = first
        .generations()
        .expect("generations")
        .prepare()
        .await
        .expect("the first process prepares");
    let refused = second
        .generations()
        .expect("generations")
        .prepare()
        .await
        .err()
        .expect("the second process is refused");
    assert!(
        refused
            .to_string()
            .contains("another process is rebuilding"),
        "{refused}"
    );
    drop(building);
    // The lock goes with the first builder's connection.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match second.generations().expect("generations").prepare().await {
            Ok(_) => break,
            Err(error) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "still refused: {error}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
