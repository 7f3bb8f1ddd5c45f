//! The OpenSearch adapter without OpenSearch (it cannot run on these machines): a recording
//! HTTP stub on loopback answers with responses in the documented shapes
//! (tests/fixtures/opensearch), and the tests assert the exact requests the adapter sends —
//! the index template, the bulk NDJSON, the query DSL — and what it makes of the answers,
//! partial bulk failures included. `docker-compose.yml` runs it against a real OpenSearch.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Method, StatusCode, Uri};
use parking_lot::Mutex;
use search::opensearch::{self, OpenSearchIndex};
use search::{SearchError, SearchIndex, SearchQuery, SearchSort, SearchWriter};
use serde_json::{json, Value};

#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    query: String,
    body: String,
}

type Responder = Box<dyn Fn(&Recorded, usize) -> (u16, String) + Send + Sync>;

struct Stub {
    url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Stub {
    async fn start(responder: Responder) -> Stub {
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let responder = Arc::new(responder);
        let recorded = requests.clone();
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, body: Bytes| {
            let recorded = recorded.clone();
            let responder = responder.clone();
            async move {
                let request = Recorded {
                    method,
                    path: uri.path().to_owned(),
                    query: uri.query().unwrap_or("").to_owned(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                let index = {
                    let mut all = recorded.lock();
                    all.push(request.clone());
                    all.len() - 1
                };
                let (status, body) = responder(&request, index);
                (
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    [("content-type", "application/json")],
                    body,
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Stub {
            url: format!("opensearch://{address}"),
            requests,
            server,
        }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().clone()
    }
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/opensearch")
            .join(name),
    )
    .expect("fixture")
}

/// A fixture with `"{idN}"` and `"{docN}"` filled in.
fn filled(name: &str, ids: &[String], docs: &[Value]) -> String {
    let mut text = fixture(name);
    for (index, id) in ids.iter().enumerate() {
        text = text.replace(&format!("{{id{index}}}"), id);
    }
    for (index, doc) in docs.iter().enumerate() {
        text = text.replace(&format!("\"{{doc{index}}}\""), &doc.to_string());
    }
    text
}

fn products() -> Vec<projectors::read_model::ProductView> {
    vec![
        search::conformance::product(
            "HEAD-0001",
            "Wireless Headphones",
            "Acme",
            "headphones",
            12_999,
            5,
            1,
        ),
        search::conformance::product(
            "HEAD-0003",
            "Kids Headphones",
            "Acme",
            "headphones",
            1_999,
            9,
            2,
        ),
        search::conformance::product(
            "HEAD-0002",
            "Studio Headphones",
            "Sonora",
            "headphones",
            24_999,
            0,
            3,
        ),
    ]
}

#[tokio::test]
async fn setup_puts_the_template_and_creates_the_first_generation_behind_the_alias() {
    let stub = Stub::start(Box::new(|request, _| {
        match (request.method.as_str(), request.path.as_str()) {
            ("PUT", "/_index_template/catalog-products") => (200, fixture("acknowledged.json")),
            ("HEAD", "/_alias/catalog-products") => (404, String::new()),
            ("PUT", "/catalog-products-v1") => (200, fixture("create-index.json")),
            _ => (500, "{}".into()),
        }
    }))
    .await;
    let index = OpenSearchIndex::connect(&stub.url).expect("client");
    let report = index.setup().await.expect("setup");
    assert_eq!(report.len(), 2, "{report:?}");
    let requests = stub.requests();
    let sent: Vec<(String, String)> = requests
        .iter()
        .map(|request| (request.method.to_string(), request.path.clone()))
        .collect();
    assert_eq!(
        sent,
        [
            (
                "PUT".to_owned(),
                "/_index_template/catalog-products".to_owned()
            ),
            ("HEAD".to_owned(), "/_alias/catalog-products".to_owned()),
            ("PUT".to_owned(), "/catalog-products-v1".to_owned()),
        ]
    );
    let template: Value = serde_json::from_str(&requests[0].body).expect("json");
    assert_eq!(template, opensearch::index_template());
    assert_eq!(template["index_patterns"], json!(["catalog-products-*"]));
    let analyzer = &template["template"]["settings"]["analysis"]["analyzer"]["catalog"];
    assert_eq!(
        analyzer["filter"],
        json!(["lowercase", "asciifolding", "catalog_english_stemmer"])
    );
    assert_eq!(
        template["template"]["mappings"]["properties"]["name"],
        json!({"type": "text", "analyzer": "catalog"})
    );
    let created: Value = serde_json::from_str(&requests[2].body).expect("json");
    assert_eq!(
        created,
        json!({"aliases": {"catalog-products": {"is_write_index": true}}})
    );
}

#[tokio::test]
async fn puts_go_out_as_one_bulk_ndjson_request_then_the_checkpoint_is_stored() {
    let stub = Stub::start(Box::new(|request, _| match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/catalog-products/_bulk") => {
            let ids: Vec<String> = request
                .body
                .lines()
                .step_by(2)
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .filter_map(|action| action["index"]["_id"].as_str().map(str::to_owned))
                .collect();
            let items: Vec<Value> = ids
                .iter()
                .map(|id| json!({"index": {"_index": "catalog-products-v1", "_id": id, "status": 201, "result": "created"}}))
                .collect();
            (200, json!({"took": 3, "errors": false, "items": items}).to_string())
        }
        (_, "/catalog-checkpoints/_doc/search") => (201, fixture("index-checkpoint.json")),
        _ => (500, "{}".into()),
    }))
    .await;
    let index = OpenSearchIndex::connect(&stub.url).expect("client");
    let items = products();
    for (position, product) in items.iter().take(2).enumerate() {
        index
            .put(product.clone(), position as u64 + 1)
            .await
            .expect("put");
    }
    index.flush().await.expect("flush");
    let requests = stub.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].query, "refresh=wait_for");
    let expected: String = items
        .iter()
        .take(2)
        .flat_map(|product| {
            [
                json!({"index": {"_index": "catalog-products", "_id": product.id}}).to_string(),
                opensearch::document(product).to_string(),
            ]
        })
        .map(|line| line + "\n")
        .collect();
    assert_eq!(requests[0].body, expected, "bulk NDJSON");
    let checkpoint: Value = serde_json::from_str(&requests[1].body).expect("json");
    assert_eq!(checkpoint, json!({"position": 2}));
    assert_eq!(index.position(), 2);
}

#[tokio::test]
async fn a_partial_bulk_failure_retries_the_rejected_item_and_leaves_out_the_invalid_one() {
    let items = products();
    let ids: Vec<String> = items.iter().map(|product| product.id.to_string()).collect();
    let first_response = filled("bulk-partial-failure.json", &ids, &[]);
    let second_response = filled("bulk-ok-one.json", &ids[1..], &[]);
    let responses = Mutex::new(VecDeque::from([first_response, second_response]));
    let stub = Stub::start(Box::new(move |request, _| {
        match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/catalog-products/_bulk") => {
                (200, responses.lock().pop_front().unwrap_or_default())
            }
            (_, "/catalog-checkpoints/_doc/search") => (201, fixture("index-checkpoint.json")),
            _ => (500, "{}".into()),
        }
    }))
    .await;
    let index = OpenSearchIndex::connect(&stub.url).expect("client");
    for (position, product) in items.iter().enumerate() {
        index
            .put(product.clone(), position as u64 + 1)
            .await
            .expect("put");
    }
    index.flush().await.expect("first flush");
    // The 429 item is pending again: current() still sees it; nothing stored yet.
    assert!(index.current(items[1].id).await.expect("current").is_some());
    assert_eq!(
        index.position(),
        1,
        "the checkpoint stops below the item waiting for a retry"
    );
    index.flush().await.expect("second flush");
    let requests = stub.requests();
    let bulks: Vec<&Recorded> = requests
        .iter()
        .filter(|r| r.path.ends_with("/_bulk"))
        .collect();
    assert_eq!(bulks.len(), 2);
    let retried: Vec<Value> = bulks[1]
        .body
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    assert_eq!(retried.len(), 2, "one action line, one document");
    assert_eq!(retried[0]["index"]["_id"], json!(ids[1]));
    let stored = requests
        .iter()
        .rfind(|r| r.path == "/catalog-checkpoints/_doc/search")
        .expect("checkpoint");
    assert_eq!(
        serde_json::from_str::<Value>(&stored.body).expect("json"),
        json!({"position": 3})
    );
}

#[tokio::test]
async fn a_search_sends_the_query_dsl_and_reads_hits_facets_highlights_and_cursor() {
    let items = products();
    let ids: Vec<String> = items.iter().map(|product| product.id.to_string()).collect();
    let docs: Vec<Value> = items.iter().map(opensearch::document).collect();
    let response = filled("search-hits-aggregations.json", &ids, &docs);
    let stub = Stub::start(Box::new(move |request, _| {
        match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/catalog-products/_search") => (200, response.clone()),
            _ => (500, "{}".into()),
        }
    }))
    .await;
    let index = OpenSearchIndex::connect(&stub.url).expect("client");
    let query = SearchQuery {
        brands: vec!["ACME".into()],
        in_stock: true,
        min_price: Some(1_000),
        max_price: Some(20_000),
        limit: 2,
        ..SearchQuery::words("Wireles headph")
    };
    let results = index.search(&query).await.expect("search");
    let requests = stub.requests();
    let body: Value = serde_json::from_str(&requests[0].body).expect("json");
    assert_eq!(body, opensearch::search_body(&query, None));
    let should = &body["query"]["bool"]["should"];
    assert_eq!(
        should[0]["multi_match"],
        json!({"query": "wireles headph", "type": "bool_prefix", "fields": ["name^3", "brand^2", "description"],
               "fuzziness": "AUTO:5,100", "operator": "and"})
    );
    assert_eq!(
        body["query"]["bool"]["filter"],
        json!([
            {"term": {"status": "published"}},
            {"terms": {"brand_key": ["acme"]}},
            {"range": {"price_cents": {"gte": 1000, "lte": 20000}}},
            {"range": {"stock": {"gt": 0}}}
        ])
    );
    assert_eq!(body["sort"], json!(["_score", {"id": "asc"}]));
    assert_eq!(
        body["aggs"]["brand"],
        json!({"terms": {"field": "brand_raw", "size": 100}})
    );

    assert_eq!(results.total, 3);
    let skus: Vec<&str> = results
        .hits
        .iter()
        .map(|hit| hit.product.sku.as_str())
        .collect();
    assert_eq!(skus, ["HEAD-0001", "HEAD-0003"]);
    assert_eq!(
        results.hits[0].highlight.name.as_deref(),
        Some("<em>Wireless</em> <em>Headphones</em>")
    );
    assert_eq!(results.facets.brand.get("Acme"), Some(&2));
    let buckets = results.facets.price_counts();
    assert_eq!(buckets, [1, 0, 2]);

    // The next page continues after the last hit's sort values.
    let cursor = results.next_cursor.expect("a full page has a cursor");
    let next = SearchQuery {
        cursor: Some(cursor.clone()),
        ..query.clone()
    };
    index.search(&next).await.expect("page 2");
    let second: Value = serde_json::from_str(&stub.requests()[1].body).expect("json");
    assert_eq!(second["search_after"], json!([2.1, ids[1]]));
    // A cursor of another search is refused.
    let other = SearchQuery {
        cursor: Some(cursor),
        sort: SearchSort::PriceAsc,
        ..query
    };
    assert!(matches!(
        index.search(&other).await,
        Err(SearchError::Invalid(_))
    ));
}

#[tokio::test]
async fn current_reads_the_document_in_real_time_and_missing_ones_are_none() {
    let items = products();
    let ids: Vec<String> = items.iter().map(|product| product.id.to_string()).collect();
    let docs: Vec<Value> = items.iter().map(opensearch::document).collect();
    let found = filled("get-found.json", &ids, &docs);
    let missing_id = uuid::Uuid::now_v7();
    let not_found = filled("get-not-found.json", &[missing_id.to_string()], &[]);
    let first_id = ids[0].clone();
    let stub = Stub::start(Box::new(move |request, _| {
        if request.path == format!("/catalog-products/_doc/{first_id}") {
            (200, found.clone())
        } else {
            (404, not_found.clone())
        }
    }))
    .await;
    let index = OpenSearchIndex::connect(&stub.url).expect("client");
    let current = index
        .current(items[0].id)
        .await
        .expect("current")
        .expect("found");
    assert_eq!(current, items[0]);
    assert!(index.current(missing_id).await.expect("current").is_none());
}

#[tokio::test]
async fn an_unavailable_or_unreachable_cluster_is_an_error_not_a_panic() {
    let stub = Stub::start(Box::new(|_, _| (503, fixture("unavailable.json")))).await;
    let index = OpenSearchIndex::connect(&stub.url).expect("client");
    assert!(matches!(
        index.search(&SearchQuery::words("kettle")).await,
        Err(SearchError::Unavailable(_))
    ));
    index
        .put(products()[0].clone(), 1)
        .await
        .expect("put is buffered");
    assert!(matches!(
        index.flush().await,
        Err(SearchError::Unavailable(_))
    ));
    assert!(matches!(
        index.current(uuid::Uuid::now_v7()).await,
        Err(SearchError::Unavailable(_))
    ));

    let port = testkit_free_port();
    let nowhere =
        OpenSearchIndex::connect(&format!("opensearch://127.0.0.1:{port}")).expect("client");
    let started = std::time::Instant::now();
    assert!(matches!(
        nowhere.search(&SearchQuery::words("kettle")).await,
        Err(SearchError::Unavailable(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(10));
}

fn testkit_free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("port")
}
