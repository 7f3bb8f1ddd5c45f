//! `/api/search` in the embedded mode, end to end: writes become searchable, filters, facets,
//! typos, highlights, read-your-writes, and bad queries answered without a 5xx.

use catalog_tests::{assert_problem, json_body, skus, spawn_app, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

async fn app_with_products() -> (TestApp, u64) {
    let app = spawn_app().await;
    app.create_category("electronics").await;
    app.create_category("kitchen").await;
    let mut last = 0;
    for (sku, name, category, brand, price, stock) in [
        (
            "HEAD-1",
            "Wireless Headphones",
            "electronics",
            "Acme",
            12_999,
            5,
        ),
        ("HEAD-2", "Kids Headphones", "electronics", "Acme", 1_999, 0),
        ("KETL-1", "Electric Kettle", "kitchen", "Müller", 4_999, 3),
        ("CUPS-1", "Café Crème Cups", "kitchen", "Élan", 2_500, 7),
    ] {
        let created = app
            .create_product(json!({"sku": sku, "name": name, "category": category,
                "brand": brand, "price_cents": price, "stock": stock,
                "description": format!("{name} by {brand}.")}))
            .await;
        last = created.position;
    }
    (app, last)
}

async fn search(app: &TestApp, query: &str, position: impl std::fmt::Display) -> Value {
    app.read_page_after(&format!("/api/search?{query}"), position)
        .await
}

#[tokio::test]
async fn a_new_product_is_searchable_with_typos_accents_facets_and_highlights() {
    let (app, position) = app_with_products().await;
    let page = search(&app, "q=wireles%20headphones", position).await;
    assert_eq!(skus(&page)[0], "HEAD-1");
    assert!(page["items"][0]["highlight"]["name"]
        .as_str()
        .is_some_and(|name| name.contains("<em>")));
    // Every word must match: only one product has both.
    assert_eq!(page["total"], 1);
    let page = search(&app, "q=headphones", position).await;
    assert_eq!(page["facets"]["category"]["electronics"], 2);
    assert_eq!(page["facets"]["brand"]["Acme"], 2);
    assert_eq!(
        page["facets"]["price"],
        json!([{"to": 2500, "count": 1}, {"from": 2500, "to": 10000, "count": 0}, {"from": 10000, "count": 1}])
    );
    assert_eq!(
        skus(&search(&app, "q=cafe%20creme", position).await)[0],
        "CUPS-1"
    );
    assert_eq!(skus(&search(&app, "q=kettel", position).await), ["KETL-1"]);
    let filtered = search(
        &app,
        "q=headphones&in_stock=true&brand=acme&max_price=20000",
        position,
    )
    .await;
    assert_eq!(skus(&filtered), ["HEAD-1"]);
    assert_eq!(filtered["total"], 1);
    let everything = search(&app, "sort=price_asc&limit=2", position).await;
    assert_eq!(skus(&everything), ["HEAD-2", "CUPS-1"]);
    let cursor = everything["next_cursor"].as_str().expect("more");
    let next = search(
        &app,
        &format!("sort=price_asc&limit=2&cursor={cursor}"),
        position,
    )
    .await;
    assert_eq!(skus(&next), ["KETL-1", "HEAD-1"]);
    assert!(next["next_cursor"].is_null());
}

#[tokio::test]
async fn unpublished_and_archived_products_leave_the_results() {
    let (app, position) = app_with_products().await;
    let page = search(&app, "q=kettle", position).await;
    let id = page["items"][0]["id"].as_str().expect("id").to_owned();
    let response = app
        .admin_send(Method::POST, &format!("/api/products/{id}/unpublish"))
        .await;
    let answer = json_body(response).await;
    assert!(skus(&search(&app, "q=kettle", &answer["position"]).await).is_empty());
}

#[tokio::test]
async fn bad_searches_get_a_clear_answer_never_a_5xx() {
    let (app, position) = app_with_products().await;
    let long = "a".repeat(5_000);
    for (query, status) in [
        ("q=".to_owned(), 200),
        (format!("q={long}"), 400),
        ("q=%21%21%21%3F%3F".to_owned(), 200),
        ("q=%27%3B%20DROP%20TABLE%20products%3B%20--".to_owned(), 200),
        ("q=%3Cscript%3Ealert(1)%3C%2Fscript%3E".to_owned(), 200),
        (
            "q=%7B%22query%22%3A%7B%22match_all%22%3A%7B%7D%7D%7D".to_owned(),
            200,
        ),
        ("q=*%3A*%20OR%20name%3A%5B*%20TO%20*%5D".to_owned(), 200),
        ("min_price=500&max_price=100".to_owned(), 400),
        ("min_price=-1".to_owned(), 400),
        ("sort=cheapest".to_owned(), 400),
        ("limit=0".to_owned(), 400),
        ("cursor=not-a-cursor".to_owned(), 400),
        ("q=kettle&colour=red".to_owned(), 400),
    ] {
        let response = app
            .read_after(&format!("/api/search?{query}"), position)
            .await;
        if status == 200 {
            assert_eq!(response.status(), 200, "{query}");
        } else {
            assert_problem(response, status).await;
        }
    }
}

#[tokio::test]
async fn a_query_process_without_a_search_engine_searches_its_own_index_of_the_store() {
    let database = testkit::TestDatabase::create().await;
    let app = catalog_tests::spawn_distributed(catalog::config::EngineConfig {
        database_url: Some(database.url.clone()),
        database_pool_size: 6,
        ..catalog::config::EngineConfig::default()
    })
    .await;
    app.create_category("kitchen").await;
    let created = app
        .create_product(json!({"sku": "KETL-9", "name": "Gooseneck Kettle", "category": "kitchen"}))
        .await;
    let page = search(&app, "q=gooseneck%20kettel", created.position).await;
    assert_eq!(skus(&page), ["KETL-9"]);
}
