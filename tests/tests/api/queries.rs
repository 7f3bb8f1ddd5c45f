//! Every query endpoint of API.md: product pages, listings, bestsellers, categories,
//! caching headers and read-your-writes.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use catalog_tests::{assert_problem, json_body, send, skus, spawn_app, Created, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

async fn app_with_products() -> (TestApp, Vec<Created>, u64) {
    let app = spawn_app().await;
    app.create_category("electronics").await;
    app.create_category("kitchen").await;
    let specs = [
        ("E-1", "electronics", "Acme", 1000, 5),
        ("E-2", "electronics", "Zeta", 2500, 0),
        ("E-3", "electronics", "acme", 2500, 9),
        ("K-1", "kitchen", "Acme", 500, 3),
        ("K-2", "kitchen", "Cucina", 9000, 1),
    ];
    let mut created = Vec::new();
    for (sku, category, brand, price, stock) in specs {
        created.push(
            app.create_product(
                json!({"sku": sku, "name": format!("Item {sku}"), "category": category,
                "brand": brand, "price_cents": price, "stock": stock}),
            )
            .await,
        );
    }
    app.create_product(json!({"sku": "DRAFT", "status": "draft"}))
        .await;
    let last = app
        .create_product(json!({"sku": "LAST", "category": "kitchen", "price_cents": 100}))
        .await;
    let position = last.position;
    created.push(last);
    (app, created, position)
}

async fn list(app: &TestApp, query: &str, position: u64) -> Value {
    app.read_page_after(&format!("/api/products?{query}"), position)
        .await
}

#[tokio::test]
async fn a_product_page_has_an_etag_cache_control_and_answers_304_when_unchanged() {
    let (app, created, position) = app_with_products().await;
    let path = format!("/api/products/{}", created[0].id);
    let response = app.read_after(&path, position).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"1\"");
    assert!(response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .starts_with("public, max-age="));
    assert!(
        response.headers()["x-position"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= position
    );
    let if_none_match = |tags: &'static str| send(app.get(&path).header("If-None-Match", tags));
    let not_modified = if_none_match("\"1\"").await;
    assert_eq!(not_modified.status(), 304);
    assert_eq!(not_modified.headers()["etag"], "\"1\"");
    let changed = if_none_match("\"0\", W/\"9\"").await;
    assert_eq!(changed.status(), 200);
    let head = send(app.request(Method::HEAD, &path)).await;
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["etag"], "\"1\"");
    assert_problem(
        app.fetch("/api/products/0192f0c4-0000-7000-8000-000000000000")
            .await,
        404,
    )
    .await;
    let missing = app.fetch("/api/products/nope").await;
    assert!(missing.headers().contains_key("x-position"));
    assert_problem(missing, 404).await;
}

#[tokio::test]
async fn listings_sort_filter_and_hide_drafts() {
    let (app, _, position) = app_with_products().await;
    assert_eq!(
        skus(&list(&app, "", position).await),
        ["LAST", "K-2", "K-1", "E-3", "E-2", "E-1"]
    );
    assert_eq!(
        skus(&list(&app, "sort=price_asc", position).await),
        ["LAST", "K-1", "E-1", "E-2", "E-3", "K-2"]
    );
    assert_eq!(
        skus(&list(&app, "sort=price_desc", position).await),
        ["K-2", "E-2", "E-3", "E-1", "K-1", "LAST"]
    );
    assert_eq!(
        skus(&list(&app, "sort=name&category=electronics", position).await),
        ["E-1", "E-2", "E-3"]
    );
    assert_eq!(
        skus(&list(&app, "brand=ACME&sort=price_asc", position).await),
        ["LAST", "K-1", "E-1", "E-3"]
    );
    assert_eq!(
        skus(
            &list(
                &app,
                "min_price=1000&max_price=2500&sort=price_asc",
                position
            )
            .await
        ),
        ["E-1", "E-2", "E-3"]
    );
    assert_eq!(
        skus(
            &list(
                &app,
                "min_price=1000&max_price=2500&in_stock=true&sort=price_asc",
                position
            )
            .await
        ),
        ["E-1", "E-3"]
    );
    assert_eq!(
        skus(&list(&app, "category=garden", position).await),
        Vec::<&str>::new()
    );
    let page = list(&app, "limit=2&sort=price_asc", position).await;
    assert_eq!(skus(&page), ["LAST", "K-1"]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = list(
        &app,
        &format!("limit=2&sort=price_asc&cursor={cursor}"),
        position,
    )
    .await;
    assert_eq!(skus(&next), ["E-1", "E-2"]);
    let last_page = list(
        &app,
        &format!(
            "limit=4&sort=price_asc&cursor={}",
            next["next_cursor"].as_str().unwrap()
        ),
        position,
    )
    .await;
    assert_eq!(skus(&last_page), ["E-3", "K-2"]);
    assert!(last_page["next_cursor"].is_null());
}

#[tokio::test]
async fn repeated_brands_and_categories_list_products_of_any_of_them_and_all_filters_hold() {
    let (app, _, position) = app_with_products().await;
    assert_eq!(
        skus(&list(&app, "brand=Zeta&brand=cucina&sort=price_asc", position).await),
        ["E-2", "K-2"]
    );
    // Brands match case-insensitively ("Acme" and "acme"), the order of the values does
    // not matter, and ties (E-2 and E-3 cost the same) order by id.
    for query in [
        "brand=zeta&brand=ACME&sort=price_asc",
        "brand=acme&brand=Zeta&sort=price_asc",
    ] {
        assert_eq!(
            skus(&list(&app, query, position).await),
            ["LAST", "K-1", "E-1", "E-2", "E-3"],
            "{query}"
        );
    }
    assert_eq!(
        skus(&list(&app, "category=kitchen&category=electronics", position).await),
        ["LAST", "K-2", "K-1", "E-3", "E-2", "E-1"]
    );
    assert_eq!(
        skus(
            &list(
                &app,
                "category=kitchen&category=garden&brand=acme&brand=cucina&sort=price_asc",
                position
            )
            .await
        ),
        ["LAST", "K-1", "K-2"]
    );
    assert_eq!(
        skus(
            &list(
                &app,
                "brand=zeta&brand=acme&in_stock=true&sort=price_asc",
                position
            )
            .await
        ),
        ["LAST", "K-1", "E-1", "E-3"]
    );
    // A multi-value listing pages through every match once, in order.
    let query = "brand=zeta&brand=acme&sort=price_asc&limit=3";
    let first = list(&app, query, position).await;
    assert_eq!(skus(&first), ["LAST", "K-1", "E-1"]);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = list(&app, &format!("{query}&cursor={cursor}"), position).await;
    assert_eq!(skus(&second), ["E-2", "E-3"]);
    assert!(second["next_cursor"].is_null());
}

#[tokio::test]
async fn more_than_twenty_values_of_one_filter_are_400_and_twenty_are_fine() {
    let (app, _, position) = app_with_products().await;
    let repeated = |name: &str, count: usize| {
        (0..count)
            .map(|index| format!("{name}={name}-{index}"))
            .collect::<Vec<_>>()
            .join("&")
    };
    for name in ["brand", "category"] {
        let response = app
            .fetch(&format!("/api/products?{}", repeated(name, 21)))
            .await;
        let problem = assert_problem(response, 400).await;
        let detail = problem["detail"].as_str().expect("detail");
        assert!(
            detail.contains(name) && detail.contains("at most 20"),
            "{detail}"
        );
        let twenty = list(&app, &repeated(name, 20), position).await;
        assert!(skus(&twenty).is_empty(), "{name}: no product has those");
    }
    let mut twenty_brands = repeated("brand", 19);
    twenty_brands.push_str("&brand=CUCINA");
    assert_eq!(skus(&list(&app, &twenty_brands, position).await), ["K-2"]);
}

#[tokio::test]
async fn malformed_listing_parameters_are_400() {
    let (app, _, _) = app_with_products().await;
    let cursor_for_name = {
        let page = app.fetch_json("/api/products?sort=name&limit=1").await;
        page["next_cursor"].as_str().unwrap().to_owned()
    };
    for query in [
        "limit=0",
        "limit=101",
        "limit=ten",
        "sort=random",
        "min_price=-1",
        "max_price=1.5",
        "min_price=10&max_price=5",
        "in_stock=maybe",
        "cursor=garbage",
        "category=Not%20A%20Slug",
        "colour=red",
        &format!("sort=price_asc&cursor={cursor_for_name}"),
    ] {
        let response = app.fetch(&format!("/api/products?{query}")).await;
        assert!(response.headers().contains_key("x-position"), "{query}");
        assert_problem(response, 400).await;
    }
    assert_problem(app.fetch("/api/products/bestsellers?limit=0").await, 400).await;
}

#[tokio::test]
async fn bestsellers_rank_by_sales_and_categories_count_published_products() {
    let (app, created, _) = app_with_products().await;
    let mut position = Value::Null;
    for (index, quantity) in [(0usize, 1), (2, 4), (3, 2)] {
        let response = json_body(app.sell(&created[index].id, quantity).await).await;
        position = response["position"].clone();
    }
    let top = app
        .read_json_after("/api/products/bestsellers?limit=3", &position)
        .await;
    assert_eq!(skus(&top), ["E-3", "K-1", "E-1"]);
    let kitchen = app
        .read_json_after(
            "/api/products/bestsellers?category=kitchen&limit=1",
            &position,
        )
        .await;
    assert_eq!(skus(&kitchen), ["K-1"]);
    let sorted = list(&app, "sort=bestselling&limit=2", position.as_u64().unwrap()).await;
    assert_eq!(skus(&sorted), ["E-3", "K-1"]);
    let categories = app.read_json_after("/api/categories", position).await;
    let counts: HashMap<&str, u64> = categories["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["slug"].as_str().unwrap(),
                c["product_count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts, HashMap::from([("electronics", 3), ("kitchen", 3)]));
    assert!(categories["items"][0]["parent"].is_null());
}

#[tokio::test]
async fn read_your_writes_waits_for_the_position_then_gives_up_with_503() {
    let (app, _, position) = app_with_products().await;
    let response = app.read_after("/api/categories", position).await;
    assert_eq!(response.status(), 200);
    let started = Instant::now();
    let far = app.read_after("/api/categories", "999999").await;
    let waited = started.elapsed();
    assert_eq!(far.headers()["retry-after"], "1");
    assert!(far.headers().contains_key("x-position"));
    assert_problem(far, 503).await;
    assert!(
        waited >= Duration::from_millis(1900),
        "gave up after {waited:?}"
    );
    for bad in ["-1", "abc", "1.5"] {
        assert_problem(app.read_after("/api/products", bad).await, 400).await;
    }
}

#[tokio::test]
async fn a_cursor_is_stable_while_other_products_change() {
    let app = spawn_app().await;
    app.create_category("electronics").await;
    let mut stable = Vec::new();
    let mut churn = Vec::new();
    let mut position = 0;
    for index in 0..40 {
        let created = app
            .create_product(
                json!({"sku": format!("S-{index:02}"), "price_cents": 1000 + index * 10}),
            )
            .await;
        position = created.position;
        if index % 4 == 0 {
            churn.push(created.id);
        } else {
            stable.push(created.id);
        }
    }
    let writer = {
        let client = app.client.clone();
        let base = app.url("");
        let token = app.admin_token.clone();
        let churn = churn.clone();
        tokio::spawn(async move {
            for round in 0..15 {
                for id in &churn {
                    let price = if round % 2 == 0 { 100 } else { 90_000 };
                    let _ = client
                        .put(format!("{base}/api/products/{id}/price"))
                        .bearer_auth(&token)
                        .json(&json!({"price_cents": price, "currency": "USD"}))
                        .send()
                        .await;
                }
                // A new product lands in the middle of the order too.
                let _ = client
                    .post(format!("{base}/api/products"))
                    .bearer_auth(&token)
                    .json(&catalog_tests::product_body(json!({"price_cents": 1195})))
                    .send()
                    .await;
            }
        })
    };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(cursor) => format!("sort=price_asc&limit=7&cursor={cursor}"),
            None => "sort=price_asc&limit=7".to_owned(),
        };
        let page = list(&app, &query, position).await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|item| item["id"].as_str().unwrap().to_owned()),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    writer.await.unwrap();
    // API.md: no duplicates and no gaps for items that did not change. A product whose price
    // moved past the cursor between two pages is legitimately met again (ADR 0004).
    let unchanged: HashSet<&String> = stable.iter().collect();
    let seen_unchanged: Vec<&String> = seen.iter().filter(|id| unchanged.contains(id)).collect();
    let unique: HashSet<&&String> = seen_unchanged.iter().collect();
    assert_eq!(
        unique.len(),
        seen_unchanged.len(),
        "an unchanged product was listed twice"
    );
    for id in &stable {
        assert_eq!(
            seen.iter().filter(|seen_id| *seen_id == id).count(),
            1,
            "unchanged product {id} missing"
        );
    }
}

/// The ETag of `path` (read at `position`), after checking the list headers.
async fn list_tag(app: &TestApp, path: &str, position: u64, keys: &str) -> String {
    let response = app.read_after(path, position).await;
    assert_eq!(response.status(), 200, "{path}");
    let headers = response.headers();
    assert_eq!(
        headers["cache-control"], "public, max-age=5, stale-while-revalidate=30",
        "{path}"
    );
    assert_eq!(headers["surrogate-key"], keys, "{path}");
    headers["etag"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn listings_bestsellers_and_categories_answer_304_until_a_write_changes_what_they_show() {
    let (app, created, position) = app_with_products().await;
    let pages = [
        (
            "/api/products?category=kitchen&sort=price_asc",
            "catalog scope:kitchen",
        ),
        ("/api/products?sort=newest&limit=3", "catalog scope:all"),
        (
            "/api/products/bestsellers?category=kitchen",
            "catalog bestsellers",
        ),
        ("/api/categories", "catalog categories"),
    ];
    let mut tags = Vec::new();
    for (path, keys) in pages {
        let tag = list_tag(&app, path, position, keys).await;
        // The same answer twice (the second from the encoded answer kept for it), the same tag.
        assert_eq!(list_tag(&app, path, position, keys).await, tag, "{path}");
        let not_modified = send(app.get(path).header("If-None-Match", format!("W/{tag}"))).await;
        assert_eq!(not_modified.status(), 304, "{path}");
        assert_eq!(not_modified.headers()["etag"], tag.as_str(), "{path}");
        tags.push(tag);
    }
    let product = json_body(app.fetch(&format!("/api/products/{}", created[3].id)).await).await;
    assert_eq!(product["category"], "kitchen");

    // A sale of a kitchen product: its listings and the bestsellers change, the electronics
    // listing and the category list (no count moved) do not.
    let sold = json_body(
        send(
            app.admin(
                Method::POST,
                &format!("/api/products/{}/sales", created[3].id),
            )
            .json(&json!({"quantity": 2})),
        )
        .await,
    )
    .await;
    let after = sold["position"].as_u64().unwrap();
    for ((path, keys), before) in pages.iter().zip(&tags) {
        let tag = list_tag(&app, path, after, keys).await;
        let answer = send(app.get(path).header("If-None-Match", before.as_str())).await;
        if path.starts_with("/api/categories") {
            assert_eq!(&tag, before, "{path}");
            assert_eq!(answer.status(), 304, "{path}");
        } else {
            assert_ne!(&tag, before, "{path} after the sale");
            assert_eq!(answer.status(), 200, "{path} after the sale");
        }
    }
    let bestsellers = app
        .read_page_after("/api/products/bestsellers?category=kitchen", after)
        .await;
    assert_eq!(bestsellers["items"][0]["id"], created[3].id.as_str());
    assert_eq!(bestsellers["items"][0]["sales"], 2);
    let electronics = "/api/products?category=electronics";
    let tag = list_tag(&app, electronics, after, "catalog scope:electronics").await;
    let unchanged = send(app.get(electronics).header("If-None-Match", tag.as_str())).await;
    assert_eq!(unchanged.status(), 304);
}
