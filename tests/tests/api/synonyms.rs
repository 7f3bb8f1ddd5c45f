//! The search synonyms end to end: `PUT /api/search/synonyms` (admin) appends one
//! `SynonymsChanged` to the search settings' stream and answers the normalised groups with the
//! event's position; `GET /api/search/synonyms` reads them back after that position; a search
//! for one word of a group finds products named by another; bad bodies are 422 naming each
//! field; only admins may set them; the other views keep applying past the event.

use catalog_tests::{assert_problem, json_body, position_header, send, skus, spawn_app, TestApp};
use reqwest::{Method, Response};
use serde_json::{json, Value};

const PATH: &str = "/api/search/synonyms";
/// The search settings' fixed aggregate id (schemas/README.md).
const SEARCH_SETTINGS_ID: &str = "5ea2c4e5-0000-8000-8000-000000000001";

async fn put_synonyms(app: &TestApp, body: &Value) -> Response {
    app.admin_json(Method::PUT, PATH, body).await
}

/// PUTs `body` as the admin, asserting a 200 with `X-Position`; the answer.
async fn set_synonyms(app: &TestApp, body: Value) -> Value {
    let response = put_synonyms(app, &body).await;
    assert_eq!(response.status(), 200, "PUT {PATH} {body}");
    let position = position_header(&response);
    let answer = json_body(response).await;
    assert_eq!(answer["position"], position, "{answer}");
    answer
}

/// The event log's envelopes, read as the admin.
async fn events(app: &TestApp) -> Vec<Value> {
    let (status, page) = app
        .get_json("/api/events?after=0&limit=1000", &app.admin_token)
        .await;
    assert_eq!(status, 200);
    page["items"].as_array().expect("items").clone()
}

#[tokio::test]
async fn an_admin_sets_synonyms_and_gets_them_normalised_with_the_events_position() {
    let app = spawn_app().await;
    let answer = set_synonyms(
        &app,
        json!({"groups": [[" TV ", "Television", "tv"], ["Sofa", "couch", "SETTEE"]]}),
    )
    .await;
    let groups = json!([["tv", "television"], ["sofa", "couch", "settee"]]);
    assert_eq!(answer["groups"], groups);
    assert_eq!(answer["id"], SEARCH_SETTINGS_ID);
    assert_eq!(answer["version"], 1);
    let position = answer["position"].as_u64().expect("position");

    let log = events(&app).await;
    let changed = log
        .iter()
        .find(|envelope| envelope["position"] == position)
        .expect("the event is in the log at the answered position");
    assert_eq!(changed["event_type"], "SynonymsChanged");
    assert_eq!(changed["schema_version"], 1);
    assert_eq!(changed["aggregate_id"], SEARCH_SETTINGS_ID);
    assert_eq!(changed["aggregate_version"], 1);
    assert_eq!(changed["data"], json!({ "groups": groups }));

    // The same set again appends nothing and answers the event that holds it.
    let again = set_synonyms(
        &app,
        json!({"groups": [["tv", "television"], ["sofa", "couch", "settee"]]}),
    )
    .await;
    assert_eq!(
        (again["position"].as_u64(), again["version"].as_u64()),
        (Some(position), Some(1))
    );
    assert_eq!(events(&app).await.len(), log.len());

    // Another set is the next version of the same stream; an empty list clears them.
    let cleared = set_synonyms(&app, json!({"groups": []})).await;
    assert_eq!(cleared["groups"], json!([]));
    assert_eq!(cleared["version"], 2);
    assert!(cleared["position"].as_u64().expect("position") > position);
}

#[tokio::test]
async fn the_views_keep_applying_past_a_synonyms_change() {
    let app = spawn_app().await;
    app.create_category("electronics").await;
    let position =
        set_synonyms(&app, json!({"groups": [["tv", "television"]]})).await["position"].clone();
    // The read model moved over the event: reads that wait for its position answer.
    let categories = app.read_after("/api/categories", &position).await;
    assert_eq!(categories.status(), 200);
    assert!(position_header(&categories) >= position.as_u64().expect("position"));
    let created = app
        .create_product(json!({"name": "Sonora Television 55"}))
        .await;
    let product = app
        .read_json_after(&format!("/api/products/{}", created.id), created.position)
        .await;
    assert_eq!(product["name"], "Sonora Television 55");
    let page = app
        .read_page_after("/api/search?q=sonora", created.position)
        .await;
    assert_eq!(page["total"], 1, "{page}");
}

#[tokio::test]
async fn the_synonyms_are_read_back_once_the_search_index_applied_them() {
    // Needs the search index to keep synonyms (the tantivy adapter's `set_synonyms`).
    let app = spawn_app().await;
    let empty = app.read_page_after(PATH, 0).await;
    assert_eq!(empty, json!({"groups": []}));
    let answer = set_synonyms(&app, json!({"groups": [["TV", "television"]]})).await;
    let read = app.read_page_after(PATH, &answer["position"]).await;
    assert_eq!(read, json!({"groups": [["tv", "television"]]}));
    let cleared = set_synonyms(&app, json!({"groups": []})).await;
    let read = app.read_page_after(PATH, &cleared["position"]).await;
    assert_eq!(read, json!({"groups": []}));
}

#[tokio::test]
async fn a_search_for_tv_finds_the_television_once_they_are_synonyms() {
    // Needs the search index to expand query words by the synonyms (the tantivy adapter).
    let app = spawn_app().await;
    app.create_category("electronics").await;
    let created = app
        .create_product(json!({"sku": "TV-55", "name": "Sonora Television 55",
            "description": "A 55-inch screen.", "brand": "Sonora", "status": "published"}))
        .await;
    let before = app
        .read_page_after("/api/search?q=tv", created.position)
        .await;
    assert!(
        !skus(&before).contains(&"TV-55".to_owned()),
        "without synonyms, tv does not match television: {before}"
    );
    let answer = set_synonyms(&app, json!({"groups": [["tv", "television"]]})).await;
    let page = app
        .read_page_after("/api/search?q=tv", &answer["position"])
        .await;
    assert_eq!(skus(&page), ["TV-55"], "{page}");
    // And the other way round: each word of a group finds the others.
    let page = app
        .read_page_after("/api/search?q=television", &answer["position"])
        .await;
    assert_eq!(skus(&page), ["TV-55"], "{page}");
}

#[tokio::test]
async fn bad_synonym_bodies_are_422_naming_each_field_and_append_nothing() {
    let app = spawn_app().await;
    let before = events(&app).await.len();
    for (body, fields) in [
        (json!({}), vec!["groups"]),
        (json!({"groups": "tv,television"}), vec!["groups"]),
        (json!({"groups": [["tv"]]}), vec!["groups.0"]),
        (json!({"groups": [["tv", "TV"]]}), vec!["groups.0"]),
        (
            json!({"groups": [["tv", "television"], ["flat screen", 3, "ok"]]}),
            vec!["groups.1.0", "groups.1.1"],
        ),
        (
            json!({"groups": [["tv", "x".repeat(51)]]}),
            vec!["groups.0.1"],
        ),
        (
            json!({"groups": [["tv", "television"]], "extra": true}),
            vec!["extra"],
        ),
        (
            json!({"groups": vec![json!(["a", "b"]); 501]}),
            vec!["groups"],
        ),
        (json!([["tv", "television"]]), vec!["body"]),
    ] {
        let problem = assert_problem(put_synonyms(&app, &body).await, 422).await;
        let named: Vec<&str> = problem["errors"]
            .as_object()
            .expect("errors")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(named, fields, "{problem}");
    }
    let problem = assert_problem(
        put_synonyms(&app, &json!({"groups": [["tv", "tv-set"]]})).await,
        422,
    )
    .await;
    assert_eq!(
        problem["errors"]["groups.0.1"],
        json!(["must be one word of 1 to 50 letters or digits"])
    );
    let malformed = app
        .admin_raw(Method::PUT, PATH, "application/json", "{\"groups\": [")
        .await;
    assert_problem(malformed, 400).await;
    let not_json = app
        .admin_raw(Method::PUT, PATH, "text/plain", "tv television")
        .await;
    assert_problem(not_json, 415).await;
    assert_eq!(events(&app).await.len(), before, "nothing was appended");
}

#[tokio::test]
async fn only_admins_set_synonyms_and_anyone_reads_them() {
    let app = spawn_app().await;
    let body = json!({"groups": [["tv", "television"]]});
    let put = || app.request(Method::PUT, PATH).json(&body);
    assert_problem(send(put()).await, 401).await;
    assert_problem(send(put().bearer_auth("not-a-token")).await, 401).await;
    for role in ["shopper", "analyst"] {
        let token = app.user_token(&format!("{role}@example.com"), role).await;
        assert_problem(send(put().bearer_auth(&token)).await, 403).await;
    }
    assert!(
        events(&app)
            .await
            .iter()
            .all(|envelope| envelope["event_type"] != "SynonymsChanged"),
        "a refused PUT appends nothing"
    );
    let read = app.fetch(PATH).await;
    assert_eq!(read.status(), 200);
    assert!(read.headers().contains_key("x-position"));
    let bad_position = app
        .get(PATH)
        .header("X-Min-Position", "soon")
        .send()
        .await
        .expect("the server answers");
    assert_problem(bad_position, 400).await;
}
