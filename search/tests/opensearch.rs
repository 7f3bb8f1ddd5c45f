//! The OpenSearch adapter without OpenSearch (it cannot run on these machines).
//!
//! - A **fake cluster** on loopback (`Fake`) holds what it is sent (bulk documents, the
//!   checkpoint and synonyms documents, the alias) and answers `_search` by evaluating the
//!   request against its documents: bool/match/fuzzy/match_bool_prefix/term/terms/range with
//!   a crude analyzer (lower-case, fold accents, strip a plural `s` and a final `e`), filters,
//!   `post_filter`, `filter`/`terms`/`range` aggregations over the query's matches, sorts and
//!   `search_after`, highlights, the `term` suggester. A filtered-out document is not a hit.
//!   It also **checks every search body** against what the tantivy adapter's semantics
//!   require (filters only in filter context, category and brand in `post_filter`, each word
//!   with exact clauses on name/brand/description, fuzzy clauses from five letters, the last
//!   word with a prefix clause and its fuzzy clauses, `encoder: html`, the any-word fallback
//!   after an every-word request that found nothing): a violation is answered 400 and kept,
//!   and every test ends with `assert_clean`, which fails naming it. The port's conformance
//!   suite runs against the adapter on the fake.
//! - A **scripted stub** (`Stub`) answers canned responses (tests/fixtures/opensearch) for the
//!   failure cases: partial bulk failures, a bulk answer without items, an unavailable cluster.
//!
//! `docker-compose.yml` runs a real OpenSearch; `scripts/opensearch-check.sh` checks a
//! catalog against it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Method, StatusCode, Uri};
use parking_lot::Mutex;
use projectors::read_model::ProductView;
use search::conformance::{product, SearchFixture};
use search::opensearch::{self, OpenSearchIndex};
use search::{
    allowed_edits, edit_distance, SearchError, SearchIndex, SearchQuery, SearchSort, SearchWriter,
    SuggestQuery, Synonyms,
};
use serde_json::{json, Map, Value};

// ---------------------------------------------------------------------------------------------
// The loopback server

#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    query: String,
    body: String,
}

impl Recorded {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
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

    /// The bodies of the `_search` requests, in order.
    fn searches(&self) -> Vec<Value> {
        self.requests()
            .iter()
            .filter(|request| request.path == "/catalog-products/_search")
            .map(Recorded::json)
            .collect()
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

// ---------------------------------------------------------------------------------------------
// The fake cluster: state

#[derive(Default)]
struct Cluster {
    alias: bool,
    health: String,
    products: BTreeMap<String, Value>,
    checkpoints: BTreeMap<String, Value>,
    /// Answers for the next bulk requests instead of indexing them (failure cases).
    scripted_bulk: VecDeque<(u16, String)>,
    /// What the body checks found wrong.
    violations: Vec<String>,
    /// The words of an every-word request that found nothing: the next search must be their
    /// any-word fallback.
    pending_fallback: Option<Vec<String>>,
}

struct Fake {
    stub: Stub,
    cluster: Arc<Mutex<Cluster>>,
}

impl Fake {
    /// A green cluster with the alias created.
    async fn start() -> Fake {
        let cluster = Arc::new(Mutex::new(Cluster {
            alias: true,
            health: "green".into(),
            ..Cluster::default()
        }));
        let shared = cluster.clone();
        let stub = Stub::start(Box::new(move |request, _| shared.lock().answer(request))).await;
        Fake { stub, cluster }
    }

    fn index(&self) -> Arc<OpenSearchIndex> {
        OpenSearchIndex::connect(&self.stub.url).expect("client")
    }

    fn assert_clean(&self) {
        let mut cluster = self.cluster.lock();
        if let Some(words) = cluster.pending_fallback.take() {
            cluster.violations.push(format!(
                "every-word search for {words:?} found nothing and no any-word fallback followed"
            ));
        }
        assert!(
            cluster.violations.is_empty(),
            "the fake OpenSearch found these requests wrong:\n- {}",
            cluster.violations.join("\n- ")
        );
    }
}

fn reply(status: u16, body: Value) -> (u16, String) {
    (status, body.to_string())
}

impl Cluster {
    fn answer(&mut self, request: &Recorded) -> (u16, String) {
        let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
        match (request.method.as_str(), segments.as_slice()) {
            ("PUT", ["_index_template", _]) => reply(200, json!({"acknowledged": true})),
            ("HEAD", ["_alias", "catalog-products"]) => {
                (if self.alias { 200 } else { 404 }, String::new())
            }
            ("PUT", ["catalog-products-v1"]) => {
                self.alias = true;
                reply(
                    200,
                    json!({"acknowledged": true, "index": "catalog-products-v1"}),
                )
            }
            ("GET", ["_cluster", "health"]) => {
                reply(200, json!({"cluster_name": "fake", "status": self.health}))
            }
            ("POST" | "PUT", ["catalog-products", "_bulk"]) => self.bulk(request),
            ("GET", ["catalog-products", "_doc", id]) => match self.products.get(*id) {
                Some(source) => reply(
                    200,
                    json!({"_index": "catalog-products-v1", "_id": id, "found": true, "_source": source}),
                ),
                None => reply(
                    404,
                    json!({"_index": "catalog-products-v1", "_id": id, "found": false}),
                ),
            },
            ("PUT" | "POST", ["catalog-checkpoints", "_doc", id]) => {
                self.checkpoints.insert((*id).to_owned(), request.json());
                reply(
                    201,
                    json!({"_index": "catalog-checkpoints", "_id": id, "result": "created"}),
                )
            }
            ("GET", ["catalog-checkpoints", "_doc", id]) => match self.checkpoints.get(*id) {
                Some(source) => reply(
                    200,
                    json!({"_index": "catalog-checkpoints", "_id": id, "found": true, "_source": source}),
                ),
                None => reply(
                    404,
                    json!({"_index": "catalog-checkpoints", "_id": id, "found": false}),
                ),
            },
            ("POST" | "GET", ["catalog-products", "_search"]) => {
                let body = request.json();
                let before = self.violations.len();
                check_search(&body, self);
                if self.violations.len() > before {
                    return reply(
                        400,
                        json!({"error": {"type": "fake_check", "reason": self.violations[before..].join("; ")}}),
                    );
                }
                match evaluate(&body, &self.products) {
                    Ok(answer) => {
                        self.expect_fallback(&body, &answer);
                        reply(200, answer)
                    }
                    Err(why) => {
                        self.violations.push(why.clone());
                        reply(
                            400,
                            json!({"error": {"type": "fake_unsupported", "reason": why}}),
                        )
                    }
                }
            }
            _ => {
                self.violations.push(format!(
                    "unexpected request {} {}",
                    request.method, request.path
                ));
                reply(500, json!({"error": "not in the fake"}))
            }
        }
    }

    fn bulk(&mut self, request: &Recorded) -> (u16, String) {
        if let Some(scripted) = self.scripted_bulk.pop_front() {
            return scripted;
        }
        if request.query != "refresh=wait_for" {
            self.violations.push(format!(
                "bulk without refresh=wait_for: {:?}",
                request.query
            ));
        }
        let lines: Vec<Value> = request
            .body
            .lines()
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_str(line).expect("an NDJSON line"))
            .collect();
        let mut items = Vec::new();
        for pair in lines.chunks(2) {
            let id = pair[0]["index"]["_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let source = pair.get(1).cloned().unwrap_or(Value::Null);
            self.products.insert(id.clone(), source);
            items.push(json!({"index": {"_index": "catalog-products-v1", "_id": id, "status": 201, "result": "created"}}));
        }
        reply(200, json!({"took": 1, "errors": false, "items": items}))
    }

    fn expect_fallback(&mut self, body: &Value, answer: &Value) {
        if !is_main_search(body) {
            return;
        }
        let Some((combination, words)) = word_groups(body) else {
            return;
        };
        if let Some(expected) = self.pending_fallback.take() {
            if combination != Combination::Any || words != expected {
                self.violations.push(format!(
                    "after an every-word search for {expected:?} found nothing, the next search was {combination:?} of {words:?}, not the any-word fallback"
                ));
            }
            return;
        }
        if combination == Combination::All
            && words.len() > 1
            && answer["hits"]["total"]["value"] == json!(0)
        {
            self.pending_fallback = Some(words);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The fake cluster: checks of a search body

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Combination {
    All,
    Any,
}

const FILTER_FIELDS: [&str; 5] = ["status", "category", "brand_key", "price_cents", "stock"];
const TEXT_CLAUSES: [&str; 6] = [
    "match",
    "fuzzy",
    "match_bool_prefix",
    "match_phrase_prefix",
    "prefix",
    "multi_match",
];

/// The clause kind and its only field of a one-key clause object (`{"match": {"name": …}}`).
fn clause(value: &Value) -> Option<(&str, &str, &Value)> {
    let object = value.as_object()?;
    let (kind, inner) = object.iter().next()?;
    let (field, parameters) = inner.as_object()?.iter().next()?;
    Some((kind.as_str(), field.as_str(), parameters))
}

/// The query text of a text clause's parameters (`"x"` or `{"query": "x"}` / `{"value": "x"}`).
fn clause_text(parameters: &Value) -> Option<String> {
    parameters
        .as_str()
        .or_else(|| parameters["query"].as_str())
        .or_else(|| parameters["value"].as_str())
        .map(str::to_owned)
}

/// Walks `value`; `in_filter` once under a `filter` key or `post_filter`.
fn walk_filters(value: &Value, path: &str, in_filter: bool, violations: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            if let Some((kind, field, _)) = clause(value) {
                if matches!(kind, "term" | "terms" | "range")
                    && FILTER_FIELDS.contains(&field)
                    && !in_filter
                {
                    violations.push(format!("{kind} on {field} at {path} is not in filter context (it would change scores)"));
                }
                if (field == "category" || field == "brand_key") && path.starts_with(".query") {
                    violations.push(format!("the {field} filter is in the query at {path}: facets cannot ignore it (it belongs in post_filter)"));
                }
            }
            for (key, inner) in object {
                let filter = in_filter || key == "filter" || key == "post_filter";
                walk_filters(inner, &format!("{path}.{key}"), filter, violations);
            }
        }
        Value::Array(items) => {
            for (index, inner) in items.iter().enumerate() {
                walk_filters(inner, &format!("{path}[{index}]"), in_filter, violations);
            }
        }
        _ => {}
    }
}

/// Whether `value` is a word group: a `bool.should` whose clauses are text clauses.
fn is_word_group(value: &Value) -> bool {
    value["bool"]["should"].as_array().is_some_and(|should| {
        !should.is_empty()
            && should
                .iter()
                .all(|inner| clause(inner).is_some_and(|(kind, _, _)| TEXT_CLAUSES.contains(&kind)))
    })
}

/// The word of a word group: the query of its first exact `match`.
fn group_word(group: &Value) -> Option<String> {
    group["bool"]["should"]
        .as_array()?
        .iter()
        .find_map(|inner| {
            let (kind, _, parameters) = clause(inner)?;
            (kind == "match" && parameters.get("fuzziness").is_none())
                .then(|| clause_text(parameters))?
        })
}

/// Finds the bool whose `must` or `should` holds the word groups: how they are combined, and
/// the words.
fn word_groups(body: &Value) -> Option<(Combination, Vec<String>)> {
    fn find(value: &Value) -> Option<(Combination, Vec<&Value>)> {
        for (key, combination) in [("must", Combination::All), ("should", Combination::Any)] {
            if let Some(items) = value["bool"][key].as_array() {
                let groups: Vec<&Value> = items.iter().filter(|item| is_word_group(item)).collect();
                if !groups.is_empty() {
                    return Some((combination, groups));
                }
            }
        }
        match value {
            Value::Object(object) => object.values().find_map(find),
            Value::Array(items) => items.iter().find_map(find),
            _ => None,
        }
    }
    let (combination, groups) = find(&body["query"])?;
    Some((
        combination,
        groups.into_iter().filter_map(group_word).collect(),
    ))
}

/// What every search body must be (the tantivy adapter's semantics), as violations.
fn check_search(body: &Value, cluster: &mut Cluster) {
    let violations = &mut cluster.violations;
    walk_filters(body, "", false, violations);
    let published = body["query"]["bool"]["filter"]
        .as_array()
        .is_some_and(|filters| filters.contains(&json!({"term": {"status": "published"}})));
    if !published {
        violations.push("query.bool.filter lacks {\"term\": {\"status\": \"published\"}}".into());
    }
    if let Some(highlight) = body.get("highlight") {
        if highlight["encoder"] != json!("html") {
            violations.push("highlight without \"encoder\": \"html\" (a name's own <, & would arrive as markup)".into());
        }
    }
    if is_main_search(body) {
        for facet in ["category", "brand", "price"] {
            if body["aggs"][facet].get("filter").is_none() {
                violations.push(format!(
                    "aggs.{facet} is not a filter aggregation: multi-select facets need it"
                ));
            }
        }
        if body.get("highlight").is_none() {
            violations.push("a search without highlight".into());
        }
    }
    if body.to_string().contains("\"bool_prefix\"") {
        violations
            .push("multi_match of type bool_prefix ignores fuzziness on its prefix term".into());
    }
    if !is_main_search(body) {
        return;
    }
    let Some((combination, words)) = word_groups(body) else {
        return;
    };
    if combination == Combination::Any {
        let minimum = find_minimum_should_match(&body["query"]);
        if minimum != Some(1) {
            violations.push(format!(
                "the any-word fallback needs minimum_should_match 1, has {minimum:?}"
            ));
        }
    }
    let groups = all_word_groups(&body["query"]);
    for (position, group) in groups.iter().enumerate() {
        let word = group_word(group).unwrap_or_default();
        let should = group["bool"]["should"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let of_word = |wanted: &dyn Fn(&str, &Value) -> bool| -> BTreeSet<String> {
            should
                .iter()
                .filter_map(|inner| {
                    let (kind, field, parameters) = clause(inner)?;
                    (clause_text(parameters).as_deref() == Some(word.as_str())
                        && wanted(kind, parameters))
                    .then(|| field.to_owned())
                })
                .collect()
        };
        let exact =
            of_word(&|kind, parameters| kind == "match" && parameters.get("fuzziness").is_none());
        let expected: BTreeSet<String> = ["brand", "description", "name"].map(String::from).into();
        if exact != expected {
            violations.push(format!(
                "word {word:?}: exact matches on {exact:?}, not name, brand and description"
            ));
        }
        let fuzzy = of_word(&|kind, parameters| {
            (kind == "match" || kind == "fuzzy")
                && parameters["fuzziness"] == json!(1)
                && parameters["fuzzy_transpositions"] != json!(false)
                && parameters["transpositions"] != json!(false)
        });
        if allowed_edits(&word) > 0 && fuzzy != expected {
            violations.push(format!("word {word:?} ({} letters): fuzzy clauses (fuzziness 1, transpositions) on {fuzzy:?}, not name, brand and description", word.chars().count()));
        }
        if allowed_edits(&word) == 0 && !fuzzy.is_empty() {
            violations.push(format!(
                "word {word:?} is under five letters and has fuzzy clauses"
            ));
        }
        let is_last = position + 1 == groups.len();
        let prefix = of_word(&|kind, _| {
            matches!(kind, "match_bool_prefix" | "prefix" | "match_phrase_prefix")
        });
        if is_last && prefix != expected {
            violations.push(format!("the last word {word:?}: prefix clauses on {prefix:?}, not name, brand and description"));
        }
        if !is_last && !prefix.is_empty() {
            violations.push(format!(
                "word {word:?} is not the last and has prefix clauses"
            ));
        }
    }
    if words.len() > search::MAX_QUERY_WORDS {
        violations.push(format!(
            "{} words sent; at most {} are used",
            words.len(),
            search::MAX_QUERY_WORDS
        ));
    }
}

/// A search of `/api/search` (not a suggestion or a did-you-mean request): it has facets.
fn is_main_search(body: &Value) -> bool {
    body["aggs"].get("category").is_some()
}

fn all_word_groups(value: &Value) -> Vec<Value> {
    let mut found = Vec::new();
    fn collect(value: &Value, found: &mut Vec<Value>) {
        if is_word_group(value) {
            found.push(value.clone());
            return;
        }
        match value {
            Value::Object(object) => object.values().for_each(|inner| collect(inner, found)),
            Value::Array(items) => items.iter().for_each(|inner| collect(inner, found)),
            _ => {}
        }
    }
    collect(value, &mut found);
    found
}

/// The `minimum_should_match` of the bool whose `should` holds the word groups.
fn find_minimum_should_match(value: &Value) -> Option<u64> {
    if value["bool"]["should"]
        .as_array()
        .is_some_and(|should| should.iter().any(is_word_group))
    {
        return value["bool"]["minimum_should_match"].as_u64();
    }
    match value {
        Value::Object(object) => object.values().find_map(find_minimum_should_match),
        Value::Array(items) => items.iter().find_map(find_minimum_should_match),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// The fake cluster: analysis and evaluation

fn fold(character: char) -> char {
    match character {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
        'ç' => 'c',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'ñ' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' => 'o',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        other => other,
    }
}

/// The `catalog_words` analyzer: split, lower-case, fold.
fn folded_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(|word| word.to_lowercase().chars().map(fold).collect())
        .collect()
}

/// A crude English stemmer: a plural `s` (not `ss`), then a final `e`.
fn stem(word: &str) -> String {
    let mut stemmed = word.to_owned();
    if stemmed.len() > 3 && stemmed.ends_with('s') && !stemmed.ends_with("ss") {
        stemmed.pop();
    }
    if stemmed.len() > 4 && stemmed.ends_with('e') {
        stemmed.pop();
    }
    stemmed
}

/// The `catalog` analyzer: the folded words, stemmed.
fn catalog_tokens(text: &str) -> Vec<String> {
    folded_words(text).iter().map(|word| stem(word)).collect()
}

/// The tokens a field of `source` holds (analyzed fields analyzed, keywords whole).
fn field_tokens(source: &Value, field: &str) -> Vec<String> {
    let text = |name: &str| source[name].as_str().unwrap_or("").to_owned();
    match field {
        "name" | "brand" | "description" => catalog_tokens(&text(field)),
        "name.words" => folded_words(&text("name")),
        "brand.words" => folded_words(&text("brand")),
        "brand_key" | "sku_key" => vec![text(field).to_lowercase()],
        _ => match &source[field] {
            Value::String(value) => vec![value.clone()],
            Value::Null => vec![],
            other => vec![other.to_string()],
        },
    }
}

fn analyze(field: &str, text: &str) -> Vec<String> {
    match field {
        "name" | "brand" | "description" => catalog_tokens(text),
        _ => folded_words(text),
    }
}

fn boost_of(parameters: &Value) -> f64 {
    parameters["boost"].as_f64().unwrap_or(1.0)
}

fn fuzziness_of(parameters: &Value) -> Result<usize, String> {
    match &parameters["fuzziness"] {
        Value::Null => Ok(0),
        Value::Number(number) => Ok(number.as_u64().unwrap_or(0) as usize),
        other => Err(format!(
            "the fake takes numeric fuzziness only, not {other}"
        )),
    }
}

/// The score of `query` for `source`, `None` when it does not match.
fn score(query: &Value, source: &Value) -> Result<Option<f64>, String> {
    let object = query.as_object().ok_or("a clause that is not an object")?;
    let (kind, inner) = object.iter().next().ok_or("an empty clause")?;
    match kind.as_str() {
        "match_all" => Ok(Some(1.0)),
        "bool" => score_bool(inner, source),
        "match" | "match_bool_prefix" | "fuzzy" | "term" | "terms" | "range" => {
            let (field, parameters) = inner
                .as_object()
                .and_then(|fields| fields.iter().next())
                .ok_or("a clause without a field")?;
            score_leaf(kind, field, parameters, source)
        }
        other => Err(format!("the fake does not know the clause {other}")),
    }
}

fn score_bool(bool_query: &Value, source: &Value) -> Result<Option<f64>, String> {
    let clauses = |key: &str| bool_query[key].as_array().cloned().unwrap_or_default();
    let mut total = 0.0;
    for clause in clauses("must") {
        match score(&clause, source)? {
            Some(value) => total += value,
            None => return Ok(None),
        }
    }
    for clause in clauses("filter") {
        if score(&clause, source)?.is_none() {
            return Ok(None);
        }
    }
    for clause in clauses("must_not") {
        if score(&clause, source)?.is_some() {
            return Ok(None);
        }
    }
    let should = clauses("should");
    let default_minimum =
        u64::from(clauses("must").is_empty() && clauses("filter").is_empty() && !should.is_empty());
    let minimum = bool_query["minimum_should_match"]
        .as_u64()
        .unwrap_or(default_minimum);
    let mut matched = 0;
    for clause in should {
        if let Some(value) = score(&clause, source)? {
            matched += 1;
            total += value;
        }
    }
    Ok((matched >= minimum).then_some(total))
}

fn score_leaf(
    kind: &str,
    field: &str,
    parameters: &Value,
    source: &Value,
) -> Result<Option<f64>, String> {
    let tokens = field_tokens(source, field);
    let boost = boost_of(parameters);
    let matched = match kind {
        "match" => {
            let edits = fuzziness_of(parameters)?;
            let text = clause_text(parameters).ok_or("match without a query")?;
            analyze(field, &text)
                .iter()
                .filter(|term| {
                    tokens
                        .iter()
                        .any(|token| edit_distance(token, term) <= edits)
                })
                .count()
        }
        "fuzzy" => {
            let edits = fuzziness_of(parameters)?;
            let value = clause_text(parameters).ok_or("fuzzy without a value")?;
            usize::from(
                tokens
                    .iter()
                    .any(|token| edit_distance(token, &value) <= edits),
            )
        }
        "match_bool_prefix" => {
            let text = clause_text(parameters).ok_or("match_bool_prefix without a query")?;
            let terms = analyze(field, &text);
            let Some((last, earlier)) = terms.split_last() else {
                return Ok(None);
            };
            earlier.iter().filter(|term| tokens.contains(term)).count()
                + usize::from(tokens.iter().any(|token| token.starts_with(last.as_str())))
        }
        "term" => {
            let value = match parameters.get("value") {
                Some(value) => value.clone(),
                None => parameters.clone(),
            };
            let wanted = value
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            let wanted = if field == "brand_key" || field == "sku_key" {
                wanted.to_lowercase()
            } else {
                wanted
            };
            usize::from(tokens.contains(&wanted))
        }
        "terms" => {
            let values = parameters.as_array().ok_or("terms without an array")?;
            usize::from(values.iter().any(|value| {
                let wanted = value.as_str().unwrap_or("");
                let wanted = if field == "brand_key" {
                    wanted.to_lowercase()
                } else {
                    wanted.to_owned()
                };
                tokens.contains(&wanted)
            }))
        }
        "range" => {
            let value = source[field]
                .as_f64()
                .ok_or_else(|| format!("range on {field}, not a number"))?;
            let bound = |name: &str| parameters[name].as_f64();
            let inside = bound("gte").is_none_or(|gte| value >= gte)
                && bound("gt").is_none_or(|gt| value > gt)
                && bound("lte").is_none_or(|lte| value <= lte)
                && bound("lt").is_none_or(|lt| value < lt);
            usize::from(inside)
        }
        other => return Err(format!("the fake does not know the clause {other}")),
    };
    Ok((matched > 0).then_some(boost * matched as f64))
}

/// Whether one document word (of `field`) is matched by a text clause of `query` on `field`.
fn highlighted(query: &Value, field: &str, word: &str) -> bool {
    let mut clauses = Vec::new();
    fn collect<'a>(value: &'a Value, clauses: &mut Vec<&'a Value>) {
        if clause(value).is_some_and(|(kind, _, _)| TEXT_CLAUSES.contains(&kind)) {
            clauses.push(value);
            return;
        }
        match value {
            Value::Object(object) => object.values().for_each(|inner| collect(inner, clauses)),
            Value::Array(items) => items.iter().for_each(|inner| collect(inner, clauses)),
            _ => {}
        }
    }
    collect(query, &mut clauses);
    let alone = json!({field: word});
    clauses.into_iter().any(|text_clause| {
        clause(text_clause).is_some_and(|(_, clause_field, _)| clause_field == field)
            && matches!(score(text_clause, &alone), Ok(Some(_)))
    })
}

/// Lucene's `SimpleHTMLEncoder`.
fn html_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '"' => escaped.push_str("&quot;"),
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '\'' => escaped.push_str("&#x27;"),
            '/' => escaped.push_str("&#x2F;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// The highlight of `field` of `source`: the whole value, matched words in the tags.
fn highlight_field(body: &Value, source: &Value, field: &str) -> Option<String> {
    let value = source[field].as_str()?;
    let html = body["highlight"]["encoder"] == json!("html");
    let encode = |text: &str| {
        if html {
            html_escape(text)
        } else {
            text.to_owned()
        }
    };
    let mut out = String::new();
    let mut any = false;
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String, any: &mut bool| {
        if word.is_empty() {
            return;
        }
        if highlighted(&body["query"], field, word) {
            *any = true;
            out.push_str(&format!("<em>{}</em>", encode(word)));
        } else {
            out.push_str(&encode(word));
        }
        word.clear();
    };
    for character in value.chars() {
        if character.is_alphanumeric() {
            word.push(character);
        } else {
            flush(&mut word, &mut out, &mut any);
            out.push_str(&encode(&character.to_string()));
        }
    }
    flush(&mut word, &mut out, &mut any);
    any.then_some(out)
}

/// A sort value of `source` for one sort key.
fn sort_value(key: &str, score: f64, source: &Value) -> Value {
    if key == "_score" {
        json!(score)
    } else {
        source[key].clone()
    }
}

fn compare(left: &Value, right: &Value) -> std::cmp::Ordering {
    match (left.as_f64(), right.as_f64()) {
        (Some(a), Some(b)) => a.total_cmp(&b),
        _ => left
            .as_str()
            .unwrap_or("")
            .cmp(right.as_str().unwrap_or("")),
    }
}

/// The sort keys and whether each is descending.
fn sort_keys(body: &Value) -> Result<Vec<(String, bool)>, String> {
    let Some(sort) = body["sort"].as_array() else {
        return Ok(vec![("_score".into(), true)]);
    };
    sort.iter()
        .map(|key| match key {
            Value::String(name) => Ok((name.clone(), name == "_score")),
            Value::Object(object) => {
                let (name, order) = object.iter().next().ok_or("an empty sort key")?;
                Ok((name.clone(), order == "desc"))
            }
            other => Err(format!("the fake does not know the sort key {other}")),
        })
        .collect()
}

fn aggregate(aggs: &Value, documents: &[&Value]) -> Result<Value, String> {
    let mut out = Map::new();
    for (name, aggregation) in aggs.as_object().ok_or("aggs is not an object")? {
        let result = if let Some(filter) = aggregation.get("filter") {
            let mut kept = Vec::new();
            for source in documents {
                if score(filter, source)?.is_some() {
                    kept.push(*source);
                }
            }
            let mut result = json!({"doc_count": kept.len()});
            if let Some(sub) = aggregation.get("aggs") {
                for (key, value) in aggregate(sub, &kept)?
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
                {
                    result[key] = value;
                }
            }
            result
        } else if let Some(terms) = aggregation.get("terms") {
            let field = terms["field"].as_str().ok_or("terms without a field")?;
            let size = terms["size"].as_u64().unwrap_or(10) as usize;
            let prefix = match terms.get("include") {
                None => None,
                Some(Value::String(pattern)) => {
                    let literal = pattern
                        .strip_suffix(".*")
                        .filter(|literal| literal.chars().all(char::is_alphanumeric));
                    Some(literal.ok_or_else(|| format!("the fake takes include patterns of the form <word>.*, not {pattern}"))?.to_owned())
                }
                Some(other) => return Err(format!("include {other}")),
            };
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            for source in documents {
                let distinct: BTreeSet<String> = field_tokens(source, field).into_iter().collect();
                for token in distinct {
                    if prefix
                        .as_ref()
                        .is_none_or(|prefix| token.starts_with(prefix.as_str()))
                    {
                        *counts.entry(token).or_default() += 1;
                    }
                }
            }
            let mut buckets: Vec<(String, u64)> = counts.into_iter().collect();
            buckets.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            buckets.truncate(size);
            json!({"buckets": buckets.into_iter().map(|(key, count)| json!({"key": key, "doc_count": count})).collect::<Vec<_>>()})
        } else if let Some(range) = aggregation.get("range") {
            let field = range["field"].as_str().ok_or("range without a field")?;
            let mut buckets = Vec::new();
            for bucket in range["ranges"].as_array().ok_or("range without ranges")? {
                let count = documents
                    .iter()
                    .filter(|source| {
                        let value = source[field].as_f64().unwrap_or(0.0);
                        bucket["from"].as_f64().is_none_or(|from| value >= from)
                            && bucket["to"].as_f64().is_none_or(|to| value < to)
                    })
                    .count();
                let mut answered = bucket.clone();
                answered["doc_count"] = json!(count);
                buckets.push(answered);
            }
            json!({"buckets": buckets})
        } else {
            return Err(format!(
                "the fake does not know the aggregation {aggregation}"
            ));
        };
        out.insert(name.clone(), result);
    }
    Ok(Value::Object(out))
}

/// The `term` suggester over every document of the index (as OpenSearch: not the query's).
fn suggest(suggest: &Value, products: &BTreeMap<String, Value>) -> Result<Value, String> {
    let text = suggest["text"].as_str().ok_or("suggest without text")?;
    let mut out = Map::new();
    for (name, suggester) in suggest.as_object().ok_or("suggest is not an object")? {
        if name == "text" {
            continue;
        }
        let term = suggester
            .get("term")
            .ok_or("the fake knows the term suggester only")?;
        let field = term["field"]
            .as_str()
            .ok_or("term suggester without a field")?;
        let max_edits = term["max_edits"].as_u64().unwrap_or(2) as usize;
        let missing_only = term["suggest_mode"] == json!("missing");
        let mut frequencies: BTreeMap<String, u64> = BTreeMap::new();
        for source in products.values() {
            for token in field_tokens(source, field) {
                *frequencies.entry(token).or_default() += 1;
            }
        }
        let mut entries = Vec::new();
        for word in folded_words(text) {
            let mut options: Vec<(String, usize, u64)> = Vec::new();
            if !(missing_only && frequencies.contains_key(&word)) {
                for (token, frequency) in &frequencies {
                    let distance = edit_distance(token, &word);
                    if distance > 0 && distance <= max_edits {
                        options.push((token.clone(), distance, *frequency));
                    }
                }
            }
            options.sort_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)));
            let length = word.chars().count();
            entries.push(json!({"text": word, "options": options.into_iter().map(|(token, distance, frequency)| {
                json!({"text": token, "score": 1.0 - distance as f64 / length.max(1) as f64, "freq": frequency})
            }).collect::<Vec<_>>()}));
        }
        out.insert(name.clone(), Value::Array(entries));
    }
    Ok(Value::Object(out))
}

/// Answers a `_search` body from `products`.
fn evaluate(body: &Value, products: &BTreeMap<String, Value>) -> Result<Value, String> {
    let query = body
        .get("query")
        .cloned()
        .unwrap_or(json!({"match_all": {}}));
    let mut matched: Vec<(f64, &Value)> = Vec::new();
    for source in products.values() {
        if let Some(value) = score(&query, source)? {
            matched.push((value, source));
        }
    }
    let aggregations = match body.get("aggs") {
        Some(aggs) => Some(aggregate(
            aggs,
            &matched
                .iter()
                .map(|(_, source)| *source)
                .collect::<Vec<_>>(),
        )?),
        None => None,
    };
    if let Some(post_filter) = body.get("post_filter") {
        let mut kept = Vec::new();
        for (value, source) in matched {
            if score(post_filter, source)?.is_some() {
                kept.push((value, source));
            }
        }
        matched = kept;
    }
    let keys = sort_keys(body)?;
    let sort_of = |value: f64, source: &Value| -> Vec<Value> {
        keys.iter()
            .map(|(key, _)| sort_value(key, value, source))
            .collect()
    };
    let order = |left: &[Value], right: &[Value]| -> std::cmp::Ordering {
        for ((left, right), (_, descending)) in left.iter().zip(right).zip(&keys) {
            let ordering = compare(left, right);
            let ordering = if *descending {
                ordering.reverse()
            } else {
                ordering
            };
            if ordering.is_ne() {
                return ordering;
            }
        }
        std::cmp::Ordering::Equal
    };
    let mut sorted: Vec<(Vec<Value>, f64, &Value)> = matched
        .iter()
        .map(|(value, source)| (sort_of(*value, source), *value, *source))
        .collect();
    sorted.sort_by(|a, b| order(&a.0, &b.0));
    let total = sorted.len();
    if let Some(after) = body["search_after"].as_array() {
        sorted.retain(|(values, _, _)| order(values, after).is_gt());
    }
    let size = body["size"].as_u64().unwrap_or(10) as usize;
    let hits: Vec<Value> = sorted
        .into_iter()
        .take(size)
        .map(|(values, value, source)| {
            let mut hit = json!({"_index": "catalog-products-v1", "_id": source["id"], "_score": value, "_source": source, "sort": values});
            if body.get("highlight").is_some() {
                let mut highlight = Map::new();
                for field in ["name", "description"] {
                    if let Some(fragment) = highlight_field(body, source, field) {
                        highlight.insert(field.into(), json!([fragment]));
                    }
                }
                if !highlight.is_empty() {
                    hit["highlight"] = Value::Object(highlight);
                }
            }
            hit
        })
        .collect();
    let mut answer = json!({"took": 1, "timed_out": false, "hits": {"total": {"value": total, "relation": "eq"}, "hits": hits}});
    if let Some(aggregations) = aggregations {
        answer["aggregations"] = aggregations;
    }
    if let Some(suggest_body) = body.get("suggest") {
        answer["suggest"] = suggest(suggest_body, products)?;
    }
    Ok(answer)
}

// ---------------------------------------------------------------------------------------------
// The catalog the tests search

fn headphones() -> Vec<ProductView> {
    vec![
        product(
            "HEAD-0001",
            "Wireless Headphones",
            "Acme",
            "headphones",
            12_999,
            5,
            1,
        ),
        product(
            "HEAD-0003",
            "Kids Headphones",
            "Acme",
            "headphones",
            1_999,
            9,
            2,
        ),
        product(
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

fn shop() -> Vec<ProductView> {
    let mut items = headphones();
    items.extend([
        product(
            "LAPT-0001",
            "Gaming Laptop",
            "Vortex",
            "computers",
            149_900,
            4,
            4,
        ),
        product(
            "LAPT-0002",
            "Office Laptop",
            "Acme",
            "computers",
            89_900,
            2,
            5,
        ),
        product(
            "KITC-0001",
            "Gooseneck Kettle",
            "Müller",
            "kitchen",
            4_999,
            3,
            6,
        ),
        product(
            "KITC-0002",
            "Electric Kettle",
            "Acme",
            "kitchen",
            3_999,
            6,
            7,
        ),
        product("LAMP-0001", "Desk Lamp", "Lumen", "furniture", 10_000, 1, 8),
        product(
            "TELE-0001",
            "Television Stand",
            "Lumen",
            "furniture",
            19_900,
            2,
            9,
        ),
    ]);
    items
}

/// `fake`'s index with `items` put and flushed (through the adapter's own bulk requests).
async fn seeded(fake: &Fake, items: &[ProductView]) -> Arc<OpenSearchIndex> {
    let index = fake.index();
    for (position, item) in items.iter().enumerate() {
        index
            .put(item.clone(), position as u64 + 1)
            .await
            .expect("put");
    }
    index.flush().await.expect("flush");
    assert_eq!(fake.cluster.lock().products.len(), items.len());
    index
}

fn skus(results: &search::SearchResults) -> Vec<&str> {
    results
        .hits
        .iter()
        .map(|hit| hit.product.sku.as_str())
        .collect()
}

/// The word group of `word` in a search body (the `bool.should` whose exact match is it).
fn group_of(body: &Value, word: &str) -> Value {
    all_word_groups(&body["query"])
        .into_iter()
        .find(|group| group_word(group).as_deref() == Some(word))
        .unwrap_or_else(|| panic!("no clause for {word:?} in {body}"))
}

// ---------------------------------------------------------------------------------------------
// The port's conformance suite, against the adapter on the fake

async fn opensearch_on_the_fake() -> SearchFixture {
    let fake = Fake::start().await;
    let index = fake.index();
    index.start_flushing();
    index.start_following();
    SearchFixture {
        index: index.clone(),
        writer: index,
        keep: Box::new(fake.stub),
    }
}

search::search_index_suite!(
    the_opensearch_adapter_on_the_fake_passes,
    opensearch_on_the_fake
);

// ---------------------------------------------------------------------------------------------
// Searches

#[tokio::test]
async fn a_typo_in_the_last_word_is_found_by_its_fuzzy_clause() {
    let fake = Fake::start().await;
    let index = seeded(&fake, &shop()).await;
    let laptops = index
        .search(&SearchQuery::words("gaming laptpo"))
        .await
        .expect("search");
    assert_eq!(skus(&laptops), ["LAPT-0001"]);
    let kettles = index
        .search(&SearchQuery::words("gooseneck kettel"))
        .await
        .expect("search");
    assert_eq!(skus(&kettles), ["KITC-0001"]);

    let body = &fake.stub.searches()[0];
    let last = group_of(body, "laptpo");
    let should = last["bool"]["should"].as_array().expect("should");
    assert!(should.contains(&json!({"match": {"name": {"query": "laptpo", "fuzziness": 1, "prefix_length": 0, "fuzzy_transpositions": true, "boost": 1.5}}})), "{last}");
    assert!(should.contains(&json!({"fuzzy": {"name": {"value": "laptpo", "fuzziness": 1, "prefix_length": 0, "transpositions": true, "boost": 1.5}}})), "{last}");
    assert!(
        should
            .iter()
            .any(|clause| clause["match_bool_prefix"]["name"]["query"] == json!("laptpo")),
        "{last}"
    );
    assert!(
        should.contains(&json!({"match": {"brand": {"query": "laptpo", "boost": 2.0}}})),
        "{last}"
    );
    let first = group_of(body, "gaming");
    assert!(
        !first.to_string().contains("match_bool_prefix"),
        "only the last word is a prefix: {first}"
    );
    assert_eq!(
        body["query"]["bool"]["must"][0]["bool"]["should"][0]["bool"]["must"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "every word must match"
    );
    assert_eq!(
        body["query"]["bool"]["must"][0]["bool"]["should"][1],
        json!({"term": {"sku_key": {"value": "gaming laptpo", "boost": 20.0}}})
    );
    fake.assert_clean();
}

#[tokio::test]
async fn the_last_word_matches_as_a_prefix_and_short_words_get_no_typo() {
    let fake = Fake::start().await;
    let index = seeded(&fake, &shop()).await;
    let typed = index
        .search(&SearchQuery::words("wireless headph"))
        .await
        .expect("search");
    assert_eq!(skus(&typed), ["HEAD-0001"]);
    let lamb = index
        .search(&SearchQuery::words("lamb"))
        .await
        .expect("search");
    assert!(lamb.hits.is_empty(), "four letters: no edit");
    let body = &fake.stub.searches()[1];
    assert!(!group_of(body, "lamb").to_string().contains("fuzziness"));
    fake.assert_clean();
}

#[tokio::test]
async fn when_every_word_finds_nothing_a_second_request_lets_any_word_match() {
    let fake = Fake::start().await;
    let index = seeded(&fake, &shop()).await;
    let results = index
        .search(&SearchQuery::words("kettle lamp"))
        .await
        .expect("search");
    let mut found = skus(&results);
    found.sort_unstable();
    assert_eq!(found, ["KITC-0001", "KITC-0002", "LAMP-0001"]);
    assert_eq!(results.total, 3);
    let searches = fake.stub.searches();
    assert_eq!(
        searches.len(),
        2,
        "the every-word request, then the fallback"
    );
    let words = |body: &Value| body["query"]["bool"]["must"][0]["bool"]["should"][0].clone();
    assert_eq!(
        words(&searches[0])["bool"]["must"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(
        words(&searches[1])["bool"]["should"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(
        words(&searches[1])["bool"]["minimum_should_match"],
        json!(1)
    );
    // One word that finds nothing has no fallback.
    index
        .search(&SearchQuery::words("zebra"))
        .await
        .expect("search");
    assert_eq!(
        fake.stub.searches().len(),
        4,
        "the search and its did-you-mean, no fallback"
    );
    fake.assert_clean();
}

#[tokio::test]
async fn a_query_equal_to_a_sku_finds_that_product_first() {
    let fake = Fake::start().await;
    let index = seeded(&fake, &shop()).await;
    let results = index
        .search(&SearchQuery::words("  LAPT-0002 "))
        .await
        .expect("search");
    assert_eq!(skus(&results).first(), Some(&"LAPT-0002"));
    let body = &fake.stub.searches()[0];
    assert_eq!(
        body["query"]["bool"]["must"][0]["bool"]["should"][1]["term"]["sku_key"],
        json!({"value": "lapt-0002", "boost": 20.0})
    );
    fake.assert_clean();
}

#[tokio::test]
async fn filters_are_in_filter_context_and_a_filtered_out_product_is_not_a_hit() {
    let fake = Fake::start().await;
    let index = seeded(&fake, &shop()).await;
    let query = SearchQuery {
        brands: vec!["ACME".into()],
        in_stock: true,
        min_price: Some(1_000),
        max_price: Some(20_000),
        ..SearchQuery::words("Wireles headph")
    };
    let results = index.search(&query).await.expect("search");
    assert_eq!(skus(&results), ["HEAD-0001"]);
    let studio = SearchQuery {
        brands: vec!["sonora".into()],
        in_stock: true,
        ..SearchQuery::words("headphones")
    };
    assert!(
        index.search(&studio).await.expect("search").hits.is_empty(),
        "out of stock"
    );

    let body = &fake.stub.searches()[0];
    assert_eq!(
        body["query"]["bool"]["filter"],
        json!([
            {"term": {"status": "published"}},
            {"range": {"price_cents": {"gte": 1000, "lte": 20000}}},
            {"range": {"stock": {"gt": 0}}}
        ])
    );
    assert_eq!(
        body["post_filter"],
        json!({"bool": {"filter": [{"terms": {"brand_key": ["acme"]}}]}})
    );
    assert_eq!(body["sort"], json!(["_score", {"id": "asc"}]));
    fake.assert_clean();
}

#[tokio::test]
async fn each_facet_counts_without_its_own_filter_and_with_the_others() {
    let fake = Fake::start().await;
    let index = seeded(&fake, &shop()).await;
    let query = SearchQuery {
        brands: vec!["Acme".into()],
        categories: vec!["headphones".into()],
        ..SearchQuery::words("")
    };
    let results = index.search(&query).await.expect("search");
    let mut found = skus(&results);
    found.sort_unstable();
    assert_eq!(found, ["HEAD-0001", "HEAD-0003"]);
    assert_eq!(results.total, 2);
    // Brands of headphones, whatever the brand filter: Sonora could be added.
    assert_eq!(
        results.facets.brand,
        BTreeMap::from([("Acme".to_owned(), 2), ("Sonora".to_owned(), 1)])
    );
    // Categories of Acme products, whatever the category filter.
    assert_eq!(
        results.facets.category,
        BTreeMap::from([
            ("computers".to_owned(), 1),
            ("headphones".to_owned(), 2),
            ("kitchen".to_owned(), 1)
        ])
    );
    // Price under both filters.
    assert_eq!(results.facets.price_counts(), [1, 0, 1]);

    let body = &fake.stub.searches()[0];
    assert_eq!(
        body["aggs"]["brand"]["filter"],
        json!({"bool": {"filter": [{"terms": {"category": ["headphones"]}}]}})
    );
    assert_eq!(
        body["aggs"]["category"]["filter"],
        json!({"bool": {"filter": [{"terms": {"brand_key": ["acme"]}}]}})
    );
    assert_eq!(
        body["aggs"]["brand"]["aggs"]["values"],
        json!({"terms": {"field": "brand_raw", "size": 100}})
    );
    assert_eq!(
        body["sort"],
        json!([{"created": "desc"}, {"id": "asc"}]),
        "no words: newest first"
    );
    fake.assert_clean();
}

#[tokio::test]
async fn highlights_mark_the_matched_words_and_escape_the_rest() {
    let fake = Fake::start().await;
    let mut mugs = product(
        "MUGS-0001",
        "Tom & Jerry <Mugs>",
        "Acme",
        "kitchen",
        1_500,
        3,
        1,
    );
    mugs.description = "Two mugs & a <b>lid</b>.".into();
    let index = seeded(&fake, &[mugs]).await;
    let results = index
        .search(&SearchQuery::words("mugs"))
        .await
        .expect("search");
    assert_eq!(
        results.hits[0].highlight.name.as_deref(),
        Some("Tom &amp; Jerry &lt;<em>Mugs</em>&gt;")
    );
    assert_eq!(
        results.hits[0].highlight.description.as_deref(),
        Some("Two <em>mugs</em> &amp; a &lt;b&gt;lid&lt;&#x2F;b&gt;.")
    );
    assert_eq!(
        fake.stub.searches()[0]["highlight"]["encoder"],
        json!("html")
    );
    fake.assert_clean();
}

#[tokio::test]
async fn cursors_page_on_after_the_last_hit_and_refuse_another_search() {
    let fake = Fake::start().await;
    let index = seeded(&fake, &shop()).await;
    let query = SearchQuery {
        limit: 2,
        sort: SearchSort::PriceAsc,
        ..SearchQuery::words("headphones")
    };
    let first = index.search(&query).await.expect("page 1");
    assert_eq!(skus(&first), ["HEAD-0003", "HEAD-0001"]);
    let cursor = first.next_cursor.expect("a full page has a cursor");
    let second = index
        .search(&SearchQuery {
            cursor: Some(cursor.clone()),
            ..query.clone()
        })
        .await
        .expect("page 2");
    assert_eq!(skus(&second), ["HEAD-0002"]);
    let sent = &fake.stub.searches()[1];
    assert_eq!(sent["search_after"][0], json!(12_999));
    let other = SearchQuery {
        cursor: Some(cursor),
        sort: SearchSort::PriceDesc,
        ..query
    };
    assert!(matches!(
        index.search(&other).await,
        Err(SearchError::Invalid(_))
    ));
    fake.assert_clean();
}

#[tokio::test]
async fn a_search_that_finds_nothing_says_what_was_probably_meant() {
    let fake = Fake::start().await;
    let index = seeded(&fake, &shop()).await;
    let results = index
        .search(&SearchQuery::words("desk lamb"))
        .await
        .expect("search");
    // "lamb" is four letters (no edit), so every-word finds nothing; any-word finds the desk
    // lamp by "desk".
    assert_eq!(skus(&results), ["LAMP-0001"]);
    assert_eq!(results.did_you_mean, None, "found something");
    let nothing = index
        .search(&SearchQuery::words("lamb"))
        .await
        .expect("search");
    assert!(nothing.hits.is_empty());
    assert_eq!(nothing.did_you_mean.as_deref(), Some("lamp"));
    let searches = fake.stub.searches();
    let asked = searches.last().expect("the suggester request");
    assert_eq!(asked["suggest"]["text"], json!("lamb"));
    assert_eq!(
        asked["suggest"]["name"]["term"]["field"],
        json!("name.words")
    );
    assert_eq!(
        asked["suggest"]["name"]["term"]["suggest_mode"],
        json!("missing")
    );
    assert_eq!(asked["size"], json!(0));
    fake.assert_clean();
}

#[tokio::test]
async fn suggestions_complete_the_last_word_most_frequent_first_with_matching_products() {
    let fake = Fake::start().await;
    let mut items = shop();
    items.push(product(
        "HEAD-0004",
        "Headset Stand",
        "Lumen",
        "headphones",
        2_999,
        1,
        10,
    ));
    let index = seeded(&fake, &items).await;
    let suggestions = index
        .suggest(&SuggestQuery {
            text: "Head".into(),
            limit: 5,
        })
        .await
        .expect("suggest");
    assert_eq!(suggestions.queries, ["headphones", "headset"]);
    assert_eq!(suggestions.products.len(), 4);
    let narrowed = index
        .suggest(&SuggestQuery {
            text: "wireless head".into(),
            limit: 5,
        })
        .await
        .expect("suggest");
    assert_eq!(narrowed.queries, ["wireless headphones"]);
    assert_eq!(
        narrowed
            .products
            .iter()
            .map(|product| product.sku.as_str())
            .collect::<Vec<_>>(),
        ["HEAD-0001"]
    );
    let brands = index
        .suggest(&SuggestQuery {
            text: "lum".into(),
            limit: 5,
        })
        .await
        .expect("suggest");
    assert_eq!(brands.queries, ["lumen"], "brands complete too");

    let body = &fake.stub.searches()[0];
    assert_eq!(
        body["aggs"]["name_words"],
        json!({"terms": {"field": "name.words", "include": "head.*", "size": 5}})
    );
    assert_eq!(
        body["query"]["bool"]["filter"],
        json!([{"term": {"status": "published"}}])
    );
    assert!(index
        .suggest(&SuggestQuery {
            text: "!!".into(),
            limit: 5
        })
        .await
        .expect("suggest")
        .queries
        .is_empty());
    fake.assert_clean();
}

#[tokio::test]
async fn synonyms_are_stored_beside_the_checkpoint_and_followed_by_query_processes() {
    let fake = Fake::start().await;
    let writer = seeded(&fake, &shop()).await;
    let groups = Synonyms {
        groups: vec![vec!["tv".into(), "television".into()]],
    };
    writer
        .set_synonyms(groups.clone(), 20)
        .await
        .expect("set synonyms");
    let stored = fake.cluster.lock().checkpoints.clone();
    assert_eq!(
        stored["synonyms"],
        json!({"synonyms": {"groups": [["tv", "television"]]}, "position": 20})
    );
    assert_eq!(
        stored["search"],
        json!({"position": 20}),
        "the checkpoint of the change is stored after it"
    );

    // Another process: it follows the stored checkpoint and synonyms.
    let reader = fake.index();
    reader.start_following();
    assert!(
        reader.wait_for(20, Duration::from_secs(5)).await,
        "the follower reaches the checkpoint"
    );
    assert_eq!(reader.synonyms().await.expect("synonyms"), groups);
    let results = reader
        .search(&SearchQuery::words("tv stand"))
        .await
        .expect("search");
    assert_eq!(skus(&results), ["TELE-0001"]);
    let body = fake.stub.searches().last().cloned().expect("a search");
    let tv = group_of(&body, "tv");
    assert!(
        tv["bool"]["should"]
            .as_array()
            .expect("should")
            .contains(&json!({"match": {"name": {"query": "television", "boost": 3.0}}})),
        "{tv}"
    );
    fake.assert_clean();
}

#[tokio::test]
async fn synonyms_wait_for_the_documents_before_them() {
    let stub_cluster = Fake::start().await;
    let index = stub_cluster.index();
    let items = headphones();
    index.put(items[0].clone(), 1).await.expect("put");
    index
        .set_synonyms(
            Synonyms {
                groups: vec![vec!["cans".into(), "headphones".into()]],
            },
            2,
        )
        .await
        .expect("set synonyms");
    let requests = stub_cluster.stub.requests();
    let order: Vec<&str> = requests
        .iter()
        .map(|request| request.path.as_str())
        .collect();
    let bulk = order
        .iter()
        .position(|path| path.ends_with("/_bulk"))
        .expect("bulk");
    let synonyms = order
        .iter()
        .position(|path| path.ends_with("/_doc/synonyms"))
        .expect("synonyms");
    let checkpoint = order
        .iter()
        .rposition(|path| path.ends_with("/_doc/search"))
        .expect("checkpoint");
    assert!(bulk < synonyms && synonyms < checkpoint, "{order:?}");
    assert_eq!(index.position(), 2);
    stub_cluster.assert_clean();
}

#[tokio::test]
async fn at_most_ten_words_are_sent() {
    let fake = Fake::start().await;
    let index = seeded(&fake, &shop()).await;
    let long = "gaming laptop ".repeat(8);
    let results = index
        .search(&SearchQuery::words(&long))
        .await
        .expect("search");
    assert_eq!(skus(&results), ["LAPT-0001"]);
    let body = &fake.stub.searches()[0];
    assert_eq!(all_word_groups(&body["query"]).len(), 10);
    fake.assert_clean();
}

// ---------------------------------------------------------------------------------------------
// Readiness

#[tokio::test]
async fn readiness_needs_a_cluster_that_is_not_red_and_the_alias() {
    let fake = Fake::start().await;
    let index = fake.index();
    index.ready().await.expect("green with the alias");
    fake.cluster.lock().health = "yellow".into();
    index
        .ready()
        .await
        .expect("yellow is ready (one node: replicas unassigned)");
    fake.cluster.lock().health = "red".into();
    let red = index.ready().await.expect_err("red");
    assert!(red.to_string().contains("red"), "{red}");
    fake.cluster.lock().health = "green".into();
    fake.cluster.lock().alias = false;
    let no_alias = index.ready().await.expect_err("no alias");
    assert!(
        no_alias.to_string().contains("catalog-products"),
        "{no_alias}"
    );
    index.setup().await.expect("setup creates the alias");
    index.ready().await.expect("ready after setup");

    let nowhere = OpenSearchIndex::connect(&format!("opensearch://127.0.0.1:{}", free_port()))
        .expect("client");
    assert!(matches!(
        nowhere.ready().await,
        Err(SearchError::Unavailable(_))
    ));
    fake.assert_clean();
}

// ---------------------------------------------------------------------------------------------
// Setup and bulk indexing

#[tokio::test]
async fn setup_puts_the_template_and_creates_the_first_generation_behind_the_alias() {
    let fake = Fake::start().await;
    fake.cluster.lock().alias = false;
    let index = fake.index();
    let report = index.setup().await.expect("setup");
    assert_eq!(report.len(), 2, "{report:?}");
    let requests = fake.stub.requests();
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
    let template = requests[0].json();
    assert_eq!(template["index_patterns"], json!(["catalog-products-*"]));
    let analysis = &template["template"]["settings"]["analysis"];
    assert_eq!(
        analysis["analyzer"]["catalog"]["filter"],
        json!(["lowercase", "asciifolding", "catalog_english_stemmer"])
    );
    assert_eq!(
        analysis["analyzer"]["catalog_words"]["filter"],
        json!(["lowercase", "asciifolding"])
    );
    let properties = &template["template"]["mappings"]["properties"];
    let words = json!({"words": {"type": "text", "analyzer": "catalog_words", "fielddata": true}});
    assert_eq!(
        properties["name"],
        json!({"type": "text", "analyzer": "catalog", "fields": words})
    );
    assert_eq!(
        properties["brand"],
        json!({"type": "text", "analyzer": "catalog", "fields": words})
    );
    assert_eq!(
        properties["sku_key"],
        json!({"type": "keyword", "normalizer": "lowercase"})
    );
    assert_eq!(
        properties["brand_key"],
        json!({"type": "keyword", "normalizer": "lowercase"})
    );
    assert_eq!(
        requests[2].json(),
        json!({"aliases": {"catalog-products": {"is_write_index": true}}})
    );
    // Again: the alias exists, nothing is created.
    assert_eq!(index.setup().await.expect("setup again").len(), 2);
    assert_eq!(fake.stub.requests().len(), 5);
    fake.assert_clean();
}

#[tokio::test]
async fn puts_go_out_as_one_bulk_ndjson_request_then_the_checkpoint_is_stored() {
    let fake = Fake::start().await;
    let index = fake.index();
    let items = headphones();
    for (position, product) in items.iter().take(2).enumerate() {
        index
            .put(product.clone(), position as u64 + 1)
            .await
            .expect("put");
    }
    index.flush().await.expect("flush");
    let requests = fake.stub.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].query, "refresh=wait_for");
    let lines: Vec<Value> = requests[0]
        .body
        .lines()
        .map(|line| serde_json::from_str(line).expect("json"))
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(
        lines[0],
        json!({"index": {"_index": "catalog-products", "_id": items[0].id}})
    );
    assert_eq!(lines[1]["name"], json!("Wireless Headphones"));
    assert_eq!(lines[1]["sku_key"], json!("HEAD-0001"));
    assert_eq!(lines[1]["brand_key"], json!("Acme"));
    assert_eq!(lines[1]["status"], json!("published"));
    assert_eq!(lines[1]["price_cents"], json!(12_999));
    assert_eq!(lines[1]["doc"]["sku"], json!("HEAD-0001"));
    assert_eq!(
        lines[2],
        json!({"index": {"_index": "catalog-products", "_id": items[1].id}})
    );
    assert_eq!(requests[1].json(), json!({"position": 2}));
    assert_eq!(index.position(), 2);
    fake.assert_clean();
}

#[tokio::test]
async fn a_partial_bulk_failure_retries_the_rejected_item_and_leaves_out_the_invalid_one() {
    let items = headphones();
    let ids: Vec<String> = items.iter().map(|product| product.id.to_string()).collect();
    let fake = Fake::start().await;
    fake.cluster
        .lock()
        .scripted_bulk
        .push_back((200, filled("bulk-partial-failure.json", &ids, &[])));
    let index = fake.index();
    for (position, product) in items.iter().enumerate() {
        index
            .put(product.clone(), position as u64 + 1)
            .await
            .expect("put");
    }
    index.flush().await.expect("first flush");
    // The 429 item is pending again: current() still sees it; the checkpoint stops below it.
    assert!(index.current(items[1].id).await.expect("current").is_some());
    assert_eq!(
        index.position(),
        1,
        "the checkpoint stops below the item waiting for a retry"
    );
    index.flush().await.expect("second flush");
    let requests = fake.stub.requests();
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
    assert_eq!(
        fake.cluster.lock().checkpoints["search"],
        json!({"position": 3})
    );
    assert_eq!(index.position(), 3);
    fake.assert_clean();
}

#[tokio::test]
async fn a_bulk_answer_without_items_is_an_error_and_the_checkpoint_does_not_move() {
    let fake = Fake::start().await;
    fake.cluster
        .lock()
        .scripted_bulk
        .push_back((200, json!({"took": 2, "errors": false}).to_string()));
    let index = fake.index();
    let items = headphones();
    for (position, product) in items.iter().enumerate() {
        index
            .put(product.clone(), position as u64 + 1)
            .await
            .expect("put");
    }
    let error = index.flush().await.expect_err("no items is not a success");
    assert!(error.to_string().contains("without items"), "{error}");
    assert_eq!(index.position(), 0);
    assert!(
        !fake.cluster.lock().checkpoints.contains_key("search"),
        "no checkpoint stored"
    );
    assert!(
        index.current(items[2].id).await.expect("current").is_some(),
        "still pending"
    );
    // The next flush sends the same three again, and now they are in.
    index.flush().await.expect("second flush");
    let bulks: Vec<Recorded> = fake
        .stub
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/_bulk"))
        .collect();
    assert_eq!(bulks.len(), 2);
    assert_eq!(bulks[1].body, bulks[0].body, "the same batch again");
    assert_eq!(fake.cluster.lock().products.len(), 3);
    assert_eq!(index.position(), 3);
    fake.assert_clean();
}

#[tokio::test]
async fn a_bulk_answer_with_fewer_items_than_documents_is_an_error() {
    let items = headphones();
    let ids: Vec<String> = items.iter().map(|product| product.id.to_string()).collect();
    let fake = Fake::start().await;
    fake.cluster
        .lock()
        .scripted_bulk
        .push_back((200, filled("bulk-ok-one.json", &ids, &[])));
    let index = fake.index();
    for (position, product) in items.iter().enumerate() {
        index
            .put(product.clone(), position as u64 + 1)
            .await
            .expect("put");
    }
    let error = index
        .flush()
        .await
        .expect_err("one item for three documents");
    assert!(error.to_string().contains("with 1 items"), "{error}");
    assert_eq!(index.position(), 0);
    index.flush().await.expect("second flush");
    assert_eq!(index.position(), 3);
    fake.assert_clean();
}

#[tokio::test]
async fn current_reads_the_document_in_real_time_and_missing_ones_are_none() {
    let items = headphones();
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
async fn a_search_reads_the_documented_response_shape() {
    let items = headphones();
    let ids: Vec<String> = items.iter().map(|product| product.id.to_string()).collect();
    let docs: Vec<Value> = items.iter().map(opensearch::document).collect();
    let response = filled("search-hits-aggregations.json", &ids, &docs);
    let stub = Stub::start(Box::new(move |_, _| (200, response.clone()))).await;
    let index = OpenSearchIndex::connect(&stub.url).expect("client");
    let results = index
        .search(&SearchQuery {
            limit: 2,
            ..SearchQuery::words("headphones")
        })
        .await
        .expect("search");
    assert_eq!(results.total, 3);
    assert_eq!(skus(&results), ["HEAD-0001", "HEAD-0003"]);
    assert_eq!(
        results.hits[0].highlight.name.as_deref(),
        Some("<em>Wireless</em> <em>Headphones</em>")
    );
    assert_eq!(results.facets.brand.get("Acme"), Some(&2));
    assert_eq!(results.facets.category.get("headphones"), Some(&3));
    assert_eq!(results.facets.price_counts(), [1, 0, 2]);
    assert!(results.next_cursor.is_some());
}

#[tokio::test]
async fn an_unavailable_or_unreachable_cluster_is_an_error_not_a_panic() {
    let stub = Stub::start(Box::new(|_, _| (503, fixture("unavailable.json")))).await;
    let index = OpenSearchIndex::connect(&stub.url).expect("client");
    assert!(matches!(
        index.search(&SearchQuery::words("kettle")).await,
        Err(SearchError::Unavailable(_))
    ));
    assert!(matches!(
        index
            .suggest(&SuggestQuery {
                text: "ket".into(),
                limit: 5
            })
            .await,
        Err(SearchError::Unavailable(_))
    ));
    assert!(matches!(
        index.ready().await,
        Err(SearchError::Unavailable(_))
    ));
    index
        .put(headphones()[0].clone(), 1)
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

    let nowhere = OpenSearchIndex::connect(&format!("opensearch://127.0.0.1:{}", free_port()))
        .expect("client");
    assert!(matches!(
        nowhere.search(&SearchQuery::words("kettle")).await,
        Err(SearchError::Unavailable(_))
    ));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("port")
}
