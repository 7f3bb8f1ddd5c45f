//! A rebuild of the Redis views, on a single Redis and on the Redis Cluster: generation 2 is
//! written beside generation 1 while readers read generation 1 and the live projection keeps
//! writing it, the switch moves readers and the live projection to generation 2, and dropping
//! the previous generation deletes generation 1's keys (a `SCAN` inside a script, which must
//! run on the node that owns the view's slot).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use events::{
    CatalogEvent, CategoryCreated, Envelope, EventMetadata, NewEvent, PriceChanged, ProductCreated,
    ProductStatus,
};
use projectors::read_model::{CatalogReadModel, ListQuery, MinPosition, SortOrder};
use projectors::redis::{RedisProjection, RedisReadModel};
use projectors::Projection;
use redis_client::{RedisConfig, RedisConnection};
use uuid::Uuid;

fn envelope(id: Uuid, version: u64, event: CatalogEvent, position: u64) -> Envelope {
    NewEvent::from_event(id, version, &event, Utc::now(), EventMetadata::default())
        .into_envelope(position)
}

fn created(id: Uuid, price_cents: i64, position: u64) -> Envelope {
    envelope(
        id,
        1,
        CatalogEvent::ProductCreated(ProductCreated {
            sku: format!("G-{position}"),
            name: format!("Product {position}"),
            description: String::new(),
            category: "tools".into(),
            brand: Some("Acme".into()),
            price_cents,
            currency: "USD".into(),
            stock: 1,
            status: ProductStatus::Published,
            attributes: Default::default(),
            images: Vec::new(),
        }),
        position,
    )
}

fn price_changed(id: Uuid, version: u64, price_cents: i64, position: u64) -> Envelope {
    envelope(
        id,
        version,
        CatalogEvent::PriceChanged(PriceChanged {
            price_cents,
            currency: "USD".into(),
            previous_price_cents: None,
        }),
        position,
    )
}

async fn price(model: &RedisReadModel, id: Uuid) -> Option<i64> {
    model
        .product(id, MinPosition::ANY)
        .await
        .expect("the view answers")
        .0
        .map(|product| product.price_cents)
}

/// The ids of the published products, cheapest first.
async fn by_price(model: &RedisReadModel) -> Vec<Uuid> {
    let query = ListQuery {
        categories: vec!["tools".into()],
        brands: Vec::new(),
        min_price: None,
        max_price: None,
        in_stock: false,
        sort: SortOrder::PriceAsc,
        limit: 10,
        after: None,
    };
    let page = model
        .list(&query, MinPosition::ANY)
        .await
        .expect("the view lists");
    page.items.iter().map(|product| product.id).collect()
}

async fn exists(connection: &RedisConnection, key: String) -> bool {
    let mut connection = connection.clone();
    redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut connection)
        .await
        .expect("EXISTS")
}

async fn rebuilt_beside_the_live_generation(url: &str) {
    let config = Arc::new(RedisConfig::from_url(url).expect("url"));
    let connection = RedisConnection::connect(&config).await.expect("connect");
    let live = RedisProjection::new(config.clone(), connection.clone(), "redis");
    live.mark_intact().await.expect("mark");
    let model = RedisReadModel::new(config.clone(), connection.clone());
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let mut log = vec![
        envelope(
            events::catalog_events::category_aggregate_id("tools"),
            1,
            CatalogEvent::CategoryCreated(CategoryCreated {
                slug: "tools".into(),
                name: "Tools".into(),
                parent: None,
            }),
            1,
        ),
        created(a, 100, 2),
        created(b, 200, 3),
    ];
    for event in &log {
        live.apply(event, event.position).await.expect("applies");
    }
    assert!(model.wait_for(3, Duration::from_secs(5)).await);

    let generations = live
        .generations()
        .expect("the Redis views have generations");
    let before = generations.live().await.expect("live");
    assert_eq!((before.generation, before.version), (1, 1));
    let next = generations.prepare().await.expect("prepares");
    // The live generation follows a change while the rebuild reads the log.
    log.push(price_changed(a, 2, 300, 4));
    live.apply(&log[3], 4).await.expect("applies");
    next.apply_batch(&log, 4)
        .await
        .expect("the rebuild applies");
    assert_eq!(by_price(&model).await, vec![b, a], "generation 1 serves");
    assert!(exists(&connection, config.key(&format!("g2:p:{a}"))).await);

    assert_eq!(generations.switch().await.expect("switches"), 2);
    assert_eq!(price(&model, a).await, Some(300));
    assert_eq!(by_price(&model).await, vec![b, a]);
    let (categories, _) = model
        .categories(MinPosition::ANY)
        .await
        .expect("categories");
    assert_eq!(categories.len(), 1);
    assert_eq!(categories[0].product_count, 2);
    // The live projection now writes generation 2.
    live.apply(&price_changed(b, 2, 50, 5), 5)
        .await
        .expect("applies");
    assert_eq!(price(&model, b).await, Some(50));
    assert_eq!(by_price(&model).await, vec![b, a]);
    // Generation 1 still holds b at version 1: the live write went to generation 2.
    let mut raw = connection.clone();
    let version: Option<u64> = redis::cmd("GET")
        .arg(config.key(&format!("v:{b}")))
        .query_async(&mut raw)
        .await
        .expect("GET");
    assert_eq!(version, Some(1));
    assert!(model.wait_for(5, Duration::from_secs(5)).await);

    generations.drop_previous().await.expect("drops");
    for name in [
        format!("p:{a}"),
        format!("v:{b}"),
        "counts".to_owned(),
        "checkpoint".to_owned(),
        "ix:all:newest".to_owned(),
        "ix:c:tools:price_asc".to_owned(),
    ] {
        assert!(
            !exists(&connection, config.key(&name)).await,
            "generation 1's {name} is gone"
        );
        if name != "checkpoint" && name != "counts" {
            continue;
        }
        assert!(exists(&connection, config.key(&format!("g2:{name}"))).await);
    }
    assert_eq!(price(&model, a).await, Some(300));
    let after = generations.live().await.expect("live");
    assert_eq!((after.generation, after.version), (2, 1));
}

#[tokio::test]
async fn a_single_redis_rebuilds_beside_the_live_generation() {
    rebuilt_beside_the_live_generation(&testkit::redis_url()).await;
}

#[tokio::test]
async fn a_redis_cluster_rebuilds_beside_the_live_generation() {
    rebuilt_beside_the_live_generation(&testkit::redis_cluster_url()).await;
}
