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

#[tokio::test]
async fn several_brands_or_categories_are_ored_and_each_facet_ignores_its_own_filter() {
    let (app, position) = app_with_products().await;
    let page = search(&app, "brand=Acme&brand=m%C3%BCller", position).await;
    let mut found = skus(&page);
    found.sort();
    assert_eq!(found, ["HEAD-1", "HEAD-2", "KETL-1"]);
    // The brand facet counts as if no brand were ticked: Élan can still be added.
    assert_eq!(page["facets"]["brand"]["Élan"], 1);
    assert_eq!(page["facets"]["brand"]["Acme"], 2);
    // The category facet counts the ticked brands.
    assert_eq!(page["facets"]["category"]["kitchen"], 1);
    let both = search(
        &app,
        "category=kitchen&category=electronics&brand=acme",
        position,
    )
    .await;
    assert_eq!(both["total"], 2);
    // No Acme product is in the kitchen.
    assert!(
        both["facets"]["category"].get("kitchen").is_none(),
        "{both}"
    );
    assert_eq!(both["facets"]["category"]["electronics"], 2);
    let too_many: String = (0..21).map(|i| format!("brand=b{i}&")).collect();
    assert_problem(app.fetch(&format!("/api/search?{too_many}")).await, 400).await;
}

#[tokio::test]
async fn suggestions_complete_the_last_word_and_show_matching_products() {
    let (app, position) = app_with_products().await;
    let response = app
        .read_after("/api/search/suggest?q=wireless%20hea", position)
        .await;
    assert_eq!(response.status(), 200);
    let page = json_body(response).await;
    assert_eq!(page["queries"][0], "wireless headphones");
    assert_eq!(page["products"][0]["sku"], "HEAD-1");
    let page = app.fetch_json("/api/search/suggest?q=ke&limit=1").await;
    assert_eq!(page["queries"], json!(["kettle"]));
    assert_eq!(page["products"].as_array().map(Vec::len), Some(1));
    let empty = app.fetch_json("/api/search/suggest?q=").await;
    assert_eq!(empty, json!({"queries": [], "products": []}));
    assert_problem(app.fetch("/api/search/suggest?q=ke&limit=21").await, 400).await;
    let long = "a".repeat(101);
    assert_problem(
        app.fetch(&format!("/api/search/suggest?q={long}")).await,
        400,
    )
    .await;
}

#[tokio::test]
async fn a_search_that_finds_nothing_says_what_the_shopper_probably_meant() {
    let (app, position) = app_with_products().await;
    // Two edits: beyond the typo tolerance, within a correction.
    let page = search(&app, "q=kettzz", position).await;
    assert_eq!(page["total"], 0);
    assert_eq!(page["did_you_mean"], "kettle");
    let found = search(&app, "q=kettle", position).await;
    assert!(found.get("did_you_mean").is_none(), "{found}");
}

#[tokio::test]
async fn only_the_first_ten_words_of_a_query_are_used() {
    let (app, position) = app_with_products().await;
    let ten = "wireless%20headphones%20acme%20wireless%20headphones%20acme%20wireless%20headphones%20acme%20wireless";
    assert_eq!(
        skus(&search(&app, &format!("q={ten}"), position).await),
        ["HEAD-1"]
    );
    // An eleventh word is ignored: with it, every word could not match and the any-word
    // fallback would bring the kettle and the other headphones.
    let page = search(&app, &format!("q={ten}%20kettle"), position).await;
    assert_eq!(skus(&page), ["HEAD-1"]);
}

#[tokio::test]
async fn a_cached_search_is_never_older_than_the_index() {
    let (app, position) = app_with_products().await;
    let first = search(&app, "q=kettle", position).await;
    assert_eq!(first["total"], 1);
    let again = search(&app, "q=KETTLE", position).await;
    assert_eq!(again, first);
    let created = app
        .create_product(
            json!({"sku": "KETL-2", "name": "Steel Kettle", "category": "kitchen",
            "brand": "Acme", "description": "A kettle."}),
        )
        .await;
    let fresh = search(&app, "q=kettle", created.position).await;
    assert_eq!(fresh["total"], 2, "{fresh}");
}

/// The hostile search of the issue: long descriptions (within the contract's 10,000
/// characters) and a query of 83 words. The search runs on the blocking pool, uses 10 words and
/// highlights a bounded prefix, so the process keeps answering `/healthz` while such searches
/// run, and each search answers (200, or 503 when every search worker is busy) instead of
/// taking seconds.
#[tokio::test]
async fn a_hostile_search_neither_stalls_the_process_nor_runs_unbounded() {
    let app = catalog_tests::spawn_app_alone().await;
    app.create_category("electronics").await;
    // Pseudo-random five-letter words: descriptions of mostly distinct words make a large
    // term dictionary, and the query's words are words of the descriptions (as in the issue,
    // where this search took 11.7 s).
    let letters: Vec<char> = "abcdefghijklmnopqrstuvwxyz".chars().collect();
    let word = |seed: u64| -> String {
        let mut x = (seed.wrapping_mul(2_654_435_761).wrapping_add(12_345)) % 4_294_967_296;
        (0..5)
            .map(|_| {
                x = (x.wrapping_mul(1_103_515_245).wrapping_add(12_345)) % 2_147_483_648;
                letters[((x >> 16) % 26) as usize]
            })
            .collect()
    };
    let mut position = 0;
    for product in 0..100u64 {
        let mut description = String::new();
        let mut n = product * 2_000;
        while description.len() < 9_990 {
            description.push_str(&word(n));
            description.push(' ');
            n += 1;
        }
        description.truncate(9_999);
        position = app
            .create_product(json!({"name": format!("Zebra {}", word(product)),
                "description": description}))
            .await
            .position;
    }
    let mut hostile = String::from("zebra");
    for i in 0..82u64 {
        hostile.push(' ');
        hostile.push_str(&word(i * 2_000 + i));
    }
    assert!(hostile.len() < 500);
    let url = format!("/api/search?limit=100&q={}", hostile.replace(' ', "%20"));
    // The writes are answered faster than a debug build indexes a megabyte of descriptions:
    // wait for the index (a cheap search; `X-Min-Position` waits 2 s at a time) before timing
    // the hostile one.
    let indexed = std::time::Instant::now();
    while app
        .read_after("/api/search?q=zebra&limit=1", position)
        .await
        .status()
        == 503
    {
        assert!(
            indexed.elapsed() < std::time::Duration::from_secs(120),
            "never indexed"
        );
    }
    let started = std::time::Instant::now();
    // Waits for the index; `in_stock` keeps it from answering the searches below from cache.
    let first = app
        .read_after(&format!("{url}&in_stock=true"), position)
        .await;
    assert_eq!(first.status(), 200);
    println!("the first hostile search took {:?}", started.elapsed());
    let client = reqwest::Client::new();
    let searches: Vec<_> = (0..4)
        .map(|i| {
            // Four sorts: four searches the result cache cannot answer.
            let sort = ["relevance", "newest", "price_asc", "price_desc"][i];
            let request = client.get(app.url(&format!("{url}&sort={sort}"))).send();
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let status = request.await.map(|response| response.status().as_u16());
                (status, started.elapsed())
            })
        })
        .collect();
    let started = std::time::Instant::now();
    let health = client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    let health_took = started.elapsed();
    assert_eq!(health.status(), 200);
    for search in searches {
        let (status, took) = search.await.expect("search task");
        let status = status.expect("search answered");
        assert!(status == 200 || status == 503, "status {status}");
        // The budget is 500 ms; the bound leaves room for a loaded CI machine and still fails
        // the 11.7 s this search took when it was unbounded.
        assert!(
            took < std::time::Duration::from_secs(5),
            "a search took {took:?}"
        );
    }
    assert!(
        health_took < std::time::Duration::from_secs(2),
        "/healthz took {health_took:?} beside hostile searches"
    );
}
