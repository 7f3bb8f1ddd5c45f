//! The Redis views against the local Redis, each case under a key prefix of its own: the same
//! behaviour suite as the other read models.

use std::sync::Arc;

use projectors::redis::{RedisProjection, RedisReadModel};
use redis_client::{RedisConfig, RedisConnection};

/// A fresh, complete Redis view under `url`'s key prefix: its projection and its reader.
async fn fresh_view(url: &str) -> projectors::read_model::conformance::Pair {
    let config = Arc::new(RedisConfig::from_url(url).expect("url"));
    let connection = RedisConnection::connect(&config).await.expect("connect");
    let projection = Arc::new(RedisProjection::new(
        config.clone(),
        connection.clone(),
        "redis",
    ));
    // A fresh view is complete (the runner marks it so after its catch-up).
    projectors::Projection::mark_intact(projection.as_ref())
        .await
        .expect("mark");
    let model = Arc::new(RedisReadModel::new(config, connection));
    (projection as _, model as _)
}

/// The suite on the local Redis.
mod on_a_single_redis {
    projectors::read_model_conformance_suite!(super::fresh_view(&testkit::redis_url()));
}

/// The suite on the three-master Redis Cluster the test script starts.
mod on_a_redis_cluster {
    projectors::read_model_conformance_suite!(super::fresh_view(&testkit::redis_cluster_url()));
}

#[tokio::test]
async fn a_very_selective_filter_is_too_costly_for_redis() {
    use chrono::Utc;
    use events::{
        CatalogEvent, CategoryCreated, EventMetadata, NewEvent, ProductCreated, ProductStatus,
    };
    use projectors::read_model::{
        CatalogReadModel, ListQuery, MinPosition, ReadModelError, SortOrder,
    };
    use projectors::Projection;

    let config = Arc::new(RedisConfig::from_url(&testkit::redis_url()).expect("url"));
    let connection = RedisConnection::connect(&config).await.expect("connect");
    let projection = RedisProjection::new(config.clone(), connection.clone(), "redis");
    projection.mark_intact().await.expect("mark");
    let model = RedisReadModel::new(config, connection);
    let category = CatalogEvent::CategoryCreated(CategoryCreated {
        slug: "tools".into(),
        name: "Tools".into(),
        parent: None,
    });
    let mut position = 1;
    let envelope = NewEvent::from_event(
        events::catalog_events::category_aggregate_id("tools"),
        1,
        &category,
        Utc::now(),
        EventMetadata::default(),
    )
    .into_envelope(position);
    projection.apply(&envelope, position).await.expect("apply");
    for index in 0..(projectors::redis::FILTER_SCAN_BUDGET + 100) {
        position += 1;
        let created = CatalogEvent::ProductCreated(ProductCreated {
            sku: format!("S{index}"),
            name: format!("Product {index}"),
            description: String::new(),
            category: "tools".into(),
            brand: Some(if index == 0 { "Rare" } else { "Common" }.into()),
            price_cents: 100,
            currency: "USD".into(),
            stock: 1,
            status: ProductStatus::Published,
            attributes: Default::default(),
            images: Vec::new(),
        });
        let envelope = NewEvent::from_event(
            uuid::Uuid::now_v7(),
            1,
            &created,
            Utc::now(),
            EventMetadata::default(),
        )
        .into_envelope(position);
        projection.apply(&envelope, position).await.expect("apply");
    }
    let query = ListQuery {
        categories: Vec::new(),
        brands: vec!["nowhere".into()],
        min_price: None,
        max_price: None,
        in_stock: false,
        sort: SortOrder::Newest,
        limit: 10,
        after: None,
    };
    assert!(matches!(
        model.list(&query, MinPosition::ANY).await,
        Err(ReadModelError::TooCostly)
    ));
    let unfiltered = ListQuery {
        brands: Vec::new(),
        ..query
    };
    assert_eq!(
        model
            .list(&unfiltered, MinPosition::ANY)
            .await
            .expect("list")
            .items
            .len(),
        10
    );
}

/// Several categories are several index ranges merged in the reader; a sparse filter makes it
/// read them in several rounds, and a round must stop where the first full range stops (the
/// cheap category's 200th entry here), or the next round skips what lies beyond it.
#[tokio::test]
async fn a_sparse_filter_over_two_unevenly_priced_categories_lists_every_match_once_in_order() {
    use chrono::Utc;
    use events::{
        CatalogEvent, CategoryCreated, EventMetadata, NewEvent, ProductCreated, ProductStatus,
    };
    use projectors::read_model::{CatalogReadModel, ListQuery, MinPosition, SortOrder};
    use projectors::Projection;

    let config = Arc::new(RedisConfig::from_url(&testkit::redis_url()).expect("url"));
    let connection = RedisConnection::connect(&config).await.expect("connect");
    let projection = RedisProjection::new(config.clone(), connection.clone(), "redis");
    projection.mark_intact().await.expect("mark");
    let model = RedisReadModel::new(config, connection);
    let mut position = 0;
    for slug in ["tools", "garden"] {
        position += 1;
        let category = CatalogEvent::CategoryCreated(CategoryCreated {
            slug: slug.into(),
            name: slug.to_uppercase(),
            parent: None,
        });
        let envelope = NewEvent::from_event(
            events::catalog_events::category_aggregate_id(slug),
            1,
            &category,
            Utc::now(),
            EventMetadata::default(),
        )
        .into_envelope(position);
        projection.apply(&envelope, position).await.expect("apply");
    }
    // Tools cost 100..399 cents, garden products 100..698 (every other cent): the first 200
    // of each end far apart. One in ten of each is a "Rare" (in either case).
    let mut expected = Vec::new();
    for index in 0..300_i64 {
        for (category, price, brand) in [
            (
                "tools",
                100 + index,
                if index % 10 == 0 { "Rare" } else { "Common" },
            ),
            (
                "garden",
                100 + 2 * index,
                if index % 10 == 5 { "rare" } else { "Common" },
            ),
        ] {
            position += 1;
            let id = uuid::Uuid::now_v7();
            let created = CatalogEvent::ProductCreated(ProductCreated {
                sku: format!("{category}-{index}"),
                name: format!("Product {index}"),
                description: String::new(),
                category: category.into(),
                brand: Some(brand.into()),
                price_cents: price,
                currency: "USD".into(),
                stock: 1,
                status: ProductStatus::Published,
                attributes: Default::default(),
                images: Vec::new(),
            });
            let envelope =
                NewEvent::from_event(id, 1, &created, Utc::now(), EventMetadata::default())
                    .into_envelope(position);
            projection.apply(&envelope, position).await.expect("apply");
            if brand != "Common" {
                expected.push((price, id, format!("{category}-{index}")));
            }
        }
    }
    expected.sort();
    let expected: Vec<String> = expected.into_iter().map(|(_, _, sku)| sku).collect();
    assert_eq!(expected.len(), 60);
    for limit in [100, 7] {
        let mut query = ListQuery {
            categories: vec!["tools".into(), "garden".into()],
            brands: vec!["RARE".into()],
            min_price: None,
            max_price: None,
            in_stock: false,
            sort: SortOrder::PriceAsc,
            limit,
            after: None,
        };
        let mut seen = Vec::new();
        loop {
            let page = model.list(&query, MinPosition::ANY).await.expect("list");
            seen.extend(page.items.iter().map(|product| product.sku.clone()));
            match page.next_cursor {
                Some(cursor) if seen.len() <= expected.len() => query.after = Some(cursor.after),
                _ => break,
            }
        }
        assert_eq!(seen, expected, "limit {limit}");
    }
}

#[tokio::test]
async fn a_view_without_its_intact_marker_refuses_to_answer_rather_than_say_not_found() {
    use projectors::read_model::{CatalogReadModel, MinPosition, ReadModelError};
    let config = Arc::new(RedisConfig::from_url(&testkit::redis_url()).expect("url"));
    let connection = RedisConnection::connect(&config).await.expect("connect");
    let model = RedisReadModel::new(config, connection);
    let answer = model.product(uuid::Uuid::now_v7(), MinPosition::ANY).await;
    assert!(
        matches!(answer, Err(ReadModelError::Unavailable(_))),
        "{answer:?}"
    );
    assert!(matches!(
        model.categories(MinPosition::ANY).await,
        Err(ReadModelError::Unavailable(_))
    ));
}
