//! A rebuild of the OpenSearch index, against a recording server on loopback that keeps the
//! indices, the alias and the documents it is sent (OpenSearch cannot run on these machines):
//! generation 2 is created beside generation 1 and filled from the events, the alias moves in
//! one `_aliases` call that removes generation 1 and adds generation 2 as the write index, the
//! checkpoint readers follow moves to the rebuilt position, live writes then land in
//! generation 2, and generation 1 is deleted.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{Method, StatusCode, Uri};
use chrono::Utc;
use events::{
    CatalogEvent, Envelope, EventMetadata, NewEvent, PriceChanged, ProductCreated, ProductStatus,
};
use parking_lot::Mutex;
use projectors::Projection;
use search::opensearch::OpenSearchIndex;
use search::projection::SearchProjection;
use serde_json::{json, Value};
use uuid::Uuid;

const ALIAS: &str = "catalog-products";

#[derive(Default)]
struct Cluster {
    /// Index name → document id → source.
    indices: BTreeMap<String, BTreeMap<String, Value>>,
    alias: Option<String>,
    /// Every request: method, path, body.
    requests: Vec<(String, String, String)>,
}

impl Cluster {
    fn resolve(&self, index: &str) -> String {
        match &self.alias {
            Some(target) if index == ALIAS => target.clone(),
            _ => index.to_owned(),
        }
    }

    fn answer(&mut self, method: &Method, path: &str, body: &str) -> (u16, Value) {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (method.as_str(), parts.as_slice()) {
            ("GET", ["_alias", ALIAS]) => match &self.alias {
                Some(index) => (200, json!({ index: {"aliases": {ALIAS: {}}} })),
                None => (404, json!({"error": "alias missing", "status": 404})),
            },
            ("POST", ["_aliases"]) => self.update_aliases(body),
            ("PUT", [index]) if !self.indices.contains_key(*index) => {
                self.indices.insert((*index).to_owned(), BTreeMap::new());
                (200, json!({"acknowledged": true, "index": index}))
            }
            ("PUT", [_]) => (400, json!({"error": "resource_already_exists_exception"})),
            ("DELETE", [index]) => match self.indices.remove(*index) {
                Some(_) => (200, json!({"acknowledged": true})),
                None => (404, json!({"error": "index_not_found_exception"})),
            },
            ("POST" | "PUT", [index, "_bulk"]) => self.bulk(index, body),
            ("GET", [index, "_doc", id]) => {
                let index = self.resolve(index);
                match self.indices.get(&index).and_then(|docs| docs.get(*id)) {
                    Some(source) => (200, json!({"found": true, "_source": source})),
                    None => (404, json!({"found": false})),
                }
            }
            ("PUT" | "POST", [index, "_doc", id]) => {
                let source: Value = serde_json::from_str(body).expect("a JSON document");
                let index = self.resolve(index);
                self.indices
                    .entry(index)
                    .or_default()
                    .insert((*id).to_owned(), source);
                (200, json!({"result": "updated"}))
            }
            ("DELETE", [index, "_doc", id]) => {
                let index = self.resolve(index);
                match self
                    .indices
                    .get_mut(&index)
                    .and_then(|docs| docs.remove(*id))
                {
                    Some(_) => (200, json!({"result": "deleted"})),
                    None => (404, json!({"result": "not_found"})),
                }
            }
            _ => (400, json!({"error": format!("unexpected {method} {path}")})),
        }
    }

    /// `_aliases`: exactly one removal of the alias from the index it points at and one
    /// addition to an existing index as the write index, applied together.
    fn update_aliases(&mut self, body: &str) -> (u16, Value) {
        let body: Value = serde_json::from_str(body).expect("a JSON body");
        let actions = body["actions"].as_array().cloned().unwrap_or_default();
        let [remove, add] = actions.as_slice() else {
            return (
                400,
                json!({"error": "want one remove and one add", "body": body}),
            );
        };
        let removed = remove["remove"]["index"].as_str().map(str::to_owned);
        let added = add["add"]["index"].as_str().map(str::to_owned);
        let well_formed = removed == self.alias
            && remove["remove"]["alias"] == ALIAS
            && add["add"]["alias"] == ALIAS
            && add["add"]["is_write_index"] == true
            && added
                .as_ref()
                .is_some_and(|index| self.indices.contains_key(index));
        if !well_formed {
            return (
                400,
                json!({"error": "actions do not fit the cluster", "body": body}),
            );
        }
        self.alias = added;
        (200, json!({"acknowledged": true}))
    }

    fn bulk(&mut self, index: &str, body: &str) -> (u16, Value) {
        let lines: Vec<Value> = body
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).expect("an NDJSON line"))
            .collect();
        let mut items = Vec::new();
        for pair in lines.chunks(2) {
            let action = &pair[0]["index"];
            let target = self.resolve(action["_index"].as_str().unwrap_or(index));
            let id = action["_id"].as_str().unwrap_or_default().to_owned();
            let Some(docs) = self.indices.get_mut(&target) else {
                items.push(json!({"index": {"_id": id, "status": 404}}));
                continue;
            };
            docs.insert(id.clone(), pair[1].clone());
            items.push(json!({"index": {"_id": id, "status": 201}}));
        }
        (200, json!({"errors": false, "items": items}))
    }

    /// The price of a product in `index`, as its stored document says.
    fn price(&self, index: &str, id: Uuid) -> Option<i64> {
        self.indices.get(index)?.get(&id.to_string())?["doc"]["price_cents"].as_i64()
    }
}

async fn start(cluster: Arc<Mutex<Cluster>>) -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, body: Bytes| {
        let cluster = cluster.clone();
        async move {
            let body = String::from_utf8_lossy(&body).into_owned();
            let (status, answer) = {
                let mut cluster = cluster.lock();
                cluster
                    .requests
                    .push((method.to_string(), uri.path().to_owned(), body.clone()));
                cluster.answer(&method, uri.path(), &body)
            };
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                [("content-type", "application/json")],
                answer.to_string(),
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
    (format!("opensearch://{address}"), server)
}

fn envelope(id: Uuid, version: u64, event: CatalogEvent, position: u64) -> Envelope {
    NewEvent::from_event(id, version, &event, Utc::now(), EventMetadata::default())
        .into_envelope(position)
}

fn created(id: Uuid, position: u64) -> Envelope {
    envelope(
        id,
        1,
        CatalogEvent::ProductCreated(ProductCreated {
            sku: format!("SKU-{position}"),
            name: "Sonora Television".into(),
            description: String::new(),
            category: "electronics".into(),
            brand: Some("Sonora".into()),
            price_cents: 10_000,
            currency: "USD".into(),
            stock: 3,
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

#[tokio::test]
async fn a_rebuild_fills_the_next_generation_and_moves_the_alias_in_one_call() {
    let cluster = Arc::new(Mutex::new(Cluster::default()));
    {
        let mut cluster = cluster.lock();
        cluster
            .indices
            .insert("catalog-products-v1".into(), BTreeMap::new());
        cluster.alias = Some("catalog-products-v1".into());
    }
    let (url, server) = start(cluster.clone()).await;
    let index = OpenSearchIndex::connect(&url).expect("a client");
    let live = SearchProjection::with_generations(index.clone(), "search");
    let ids = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
    let mut log: Vec<Envelope> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| created(*id, n as u64 + 1))
        .collect();
    for event in &log {
        live.apply(event, event.position).await.expect("applies");
    }
    index.flush().await.expect("flushes");

    let generations = live.generations().expect("the index has generations");
    let before = generations.live().await.expect("live");
    assert_eq!((before.generation, before.version), (1, 1));
    let next = generations.prepare().await.expect("prepares");
    assert!(cluster.lock().indices.contains_key("catalog-products-v2"));
    // The live view follows a price change while the rebuild reads the log.
    log.push(price_changed(ids[0], 2, 12_345, 4));
    live.apply(&log[3], 4).await.expect("applies");
    next.apply_batch(&log, 4)
        .await
        .expect("the rebuild applies");
    let generation = generations.switch().await.expect("switches");
    assert_eq!(generation, 2);
    {
        let cluster = cluster.lock();
        let moves: Vec<&(String, String, String)> = cluster
            .requests
            .iter()
            .filter(|(_, path, _)| path == "/_aliases")
            .collect();
        assert_eq!(moves.len(), 1, "one _aliases call");
        assert_eq!(cluster.alias.as_deref(), Some("catalog-products-v2"));
        let rebuilt = &cluster.indices["catalog-products-v2"];
        assert_eq!(rebuilt.len(), 3);
        assert_eq!(cluster.price("catalog-products-v2", ids[0]), Some(12_345));
        // The old generation got the live change before the move, nothing after it.
        assert_eq!(cluster.price("catalog-products-v1", ids[0]), Some(12_345));
        let checkpoints = &cluster.indices["catalog-checkpoints"];
        assert_eq!(checkpoints["search"]["position"], 4);
        assert_eq!(
            checkpoints["generation"],
            json!({"generation": 2, "version": 1})
        );
    }
    // Live writes after the switch go to generation 2 through the alias.
    let later = price_changed(ids[1], 2, 777, 5);
    live.apply(&later, 5).await.expect("applies");
    index.flush().await.expect("flushes");
    assert_eq!(
        cluster.lock().price("catalog-products-v2", ids[1]),
        Some(777)
    );
    assert_eq!(
        cluster.lock().price("catalog-products-v1", ids[1]),
        Some(10_000)
    );

    generations.drop_previous().await.expect("drops");
    {
        let cluster = cluster.lock();
        assert!(!cluster.indices.contains_key("catalog-products-v1"));
        assert!(!cluster.indices["catalog-checkpoints"].contains_key("search-v2"));
    }
    let after = generations.live().await.expect("live");
    assert_eq!((after.generation, after.version), (2, 1));
    let errors: Vec<_> = cluster
        .lock()
        .requests
        .iter()
        .filter(|(method, path, _)| method == "PUT" && path == "/catalog-products-v1")
        .cloned()
        .collect();
    assert!(errors.is_empty(), "generation 1 was never recreated");
    server.abort();
}
