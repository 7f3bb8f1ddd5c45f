//! Concurrency with real concurrent requests against one server.

use catalog_tests::{json_body, spawn_app_with_product};
use futures::future::join_all;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_twenty_concurrent_if_match_writers_exactly_one_wins() {
    let (app, id) = spawn_app_with_product(json!({})).await;
    let writers = (0..20).map(|index| {
        app.price_change(&id, 1000 + index, "USD")
            .header("If-Match", "\"1\"")
            .send()
    });
    let statuses: Vec<u16> = join_all(writers)
        .await
        .into_iter()
        .map(|response| response.unwrap().status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|status| **status == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|status| **status == 412).count(),
        19,
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_sales_of_one_on_stock_thirty_sell_exactly_thirty() {
    let (app, id) = spawn_app_with_product(json!({"stock": 30})).await;
    let sales = (0..50).map(|_| app.sale(&id, 1).send());
    let responses: Vec<reqwest::Response> = join_all(sales)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut last_position = 0;
    let mut sold = 0;
    let mut refused = 0;
    for response in responses {
        match response.status().as_u16() {
            200 => {
                sold += 1;
                let body = json_body(response).await;
                last_position = last_position.max(body["position"].as_u64().unwrap());
            }
            409 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((sold, refused), (30, 20));
    let product = app
        .read_json_after(&format!("/api/products/{id}"), last_position)
        .await;
    assert_eq!(
        (
            product["stock"].as_i64(),
            product["sales"].as_i64(),
            product["version"].as_u64()
        ),
        (Some(0), Some(30), Some(31))
    );
}
