//! The relevance set, measured as search teams measure it: a generated catalog of 2,640
//! products (`relevance/catalog.rs`) and 243 queries with graded judgments (3 exact, 2
//! relevant, 1 marginal, unjudged 0) in categories — typos in the first, middle and last word,
//! plurals, the kind alone, brand and kind, SKUs, accents, prefixes, synonyms, the fallback,
//! exact names. It reports nDCG@10 and MRR per category and holds each to a threshold.
//!
//! The thresholds must be able to fail, so the same set is run against two crippled rankings
//! (`Tuning` without field boosts, without typo tolerance) and the test asserts that those
//! fall below the thresholds in the categories that depend on what they lack.
//!
//! The OpenSearch adapter cannot be ranked without a server, so its part checks the request
//! body of every query of the set for the clauses the search semantics need.

#[path = "relevance/catalog.rs"]
mod catalog;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use search::opensearch::{search_body, Words};
use search::tantivy::{TantivyIndex, Tuning};
use search::{SearchIndex, SearchQuery, SearchWriter, Synonyms};
use serde_json::Value;

use catalog::{Catalog, Query};

/// `(category, nDCG@10, MRR)` floors. Each is set a little below what the real ranking scored
/// when the set was made (the figures are in the README), leaving room for a query or two to
/// move when the ranking is retuned while still catching a lost feature: a ranking without
/// boosts or typo tolerance scores far below them (asserted in the test).
const THRESHOLDS: &[(&str, f64, f64)] = &[
    ("accents", 0.97, 0.97),
    ("brand_type", 0.97, 0.97),
    ("exact", 0.97, 0.97),
    ("fallback", 0.96, 0.97),
    // 0.957 / 0.957: "gaming mice" finds sneakers that "go well with our gaming mice" and no
    // gaming mouse (the stemmer leaves mice as it is). Reported; the floor stays just below.
    ("plural", 0.93, 0.93),
    ("prefix", 0.96, 0.97),
    ("sku", 0.97, 0.97),
    // 0.950 / 0.950 (0.900 before synonyms were also looked up by the word's stem, so "tvs"
    // finds televisions). "couches" still finds glass lids with a "cool touch knob" by typo
    // and no sofa (the stem "couch" is not in a group; "couch" is written "couches" there).
    ("synonyms", 0.92, 0.92),
    ("type", 0.97, 0.97),
    ("typo_first_word", 0.95, 0.97),
    ("typo_last_word", 0.97, 0.97),
    // 0.963 / 0.963 (0.869 before a typed word was also compared, one edit off, with the
    // name and brand words as written: "hikng" is two edits from the stem "hike" but one
    // from "hiking"). Still wrong: a fuzzy match in the name ranks below exact words in
    // another kind's description ("modern flooor lamp" puts table lamps that "go well with
    // our floor lamps" first).
    ("typo_middle_word", 0.93, 0.93),
];
/// All queries together (real: 0.986 / 0.989).
const OVERALL_THRESHOLD: (f64, f64) = (0.96, 0.96);

/// The categories a ranking without field boosts must fail: where the kind's name competes
/// with accessories whose descriptions name it (three times: "fits any kettle…").
const NEED_BOOSTS: &[&str] = &["brand_type", "plural", "type"];
/// The categories a ranking without typo tolerance must fail.
const NEED_TYPOS: &[&str] = &["typo_first_word", "typo_middle_word", "typo_last_word"];

/// nDCG@10: DCG = Σ (2^grade − 1) / log2(rank + 1) over the first ten results, divided by the
/// DCG of the judged products in the best order.
fn ndcg_at_10(ranked: &[usize], grades: &BTreeMap<usize, u8>) -> f64 {
    let gain = |grade: u8| f64::from((1u32 << grade) - 1);
    let discount = |position: usize| ((position + 2) as f64).log2();
    // `fold` from 0.0: an empty `sum` of floats is −0.0.
    let dcg: f64 = ranked
        .iter()
        .take(10)
        .enumerate()
        .fold(0.0, |sum, (position, index)| {
            sum + gain(grades.get(index).copied().unwrap_or(0)) / discount(position)
        });
    let mut ideal: Vec<u8> = grades.values().copied().collect();
    ideal.sort_unstable_by(|left, right| right.cmp(left));
    let ideal_dcg: f64 = ideal
        .iter()
        .take(10)
        .enumerate()
        .map(|(position, grade)| gain(*grade) / discount(position))
        .sum();
    if ideal_dcg == 0.0 {
        0.0
    } else {
        dcg / ideal_dcg
    }
}

/// 1 / the rank of the first result graded 2 or more in the first ten (0 without one).
fn reciprocal_rank(ranked: &[usize], grades: &BTreeMap<usize, u8>) -> f64 {
    ranked
        .iter()
        .take(10)
        .position(|index| grades.get(index).copied().unwrap_or(0) >= 2)
        .map_or(0.0, |position| 1.0 / (position + 1) as f64)
}

#[test]
fn the_metrics_are_the_standard_ones() {
    let grades: BTreeMap<usize, u8> = [(1, 3), (2, 2), (3, 1)].into_iter().collect();
    assert!((ndcg_at_10(&[1, 2, 3], &grades) - 1.0).abs() < 1e-9);
    assert_eq!(ndcg_at_10(&[7, 8], &grades), 0.0);
    // [2, 1]: (3/log2 2 + 7/log2 3) / (7/log2 2 + 3/log2 3 + 1/log2 4).
    let expected = (3.0 + 7.0 / 3f64.log2()) / (7.0 + 3.0 / 3f64.log2() + 0.5);
    assert!((ndcg_at_10(&[2, 1], &grades) - expected).abs() < 1e-9);
    assert_eq!(reciprocal_rank(&[3, 9, 2], &grades), 1.0 / 3.0);
    assert_eq!(reciprocal_rank(&[3], &grades), 0.0);
}

/// One query's outcome.
struct Outcome {
    category: &'static str,
    text: String,
    ndcg: f64,
    mrr: f64,
    top: Vec<String>,
}

/// Mean nDCG@10 and MRR, and the number of queries.
#[derive(Clone, Copy, Default)]
struct Means {
    ndcg: f64,
    mrr: f64,
    queries: usize,
}

fn means<'a>(outcomes: impl Iterator<Item = &'a Outcome>) -> Means {
    let mut sum = Means::default();
    for outcome in outcomes {
        sum.ndcg += outcome.ndcg;
        sum.mrr += outcome.mrr;
        sum.queries += 1;
    }
    let count = sum.queries.max(1) as f64;
    Means {
        ndcg: sum.ndcg / count,
        mrr: sum.mrr / count,
        queries: sum.queries,
    }
}

fn by_category(outcomes: &[Outcome]) -> BTreeMap<&'static str, Means> {
    let categories: std::collections::BTreeSet<&'static str> =
        outcomes.iter().map(|outcome| outcome.category).collect();
    categories
        .into_iter()
        .map(|category| {
            (
                category,
                means(
                    outcomes
                        .iter()
                        .filter(|outcome| outcome.category == category),
                ),
            )
        })
        .collect()
}

/// An index of the whole catalog with the synonyms set, ranking as `tuning` says.
async fn index_with(catalog: &Catalog, tuning: Tuning) -> (tempfile::TempDir, Arc<TantivyIndex>) {
    let directory = tempfile::tempdir().expect("dir");
    let index = TantivyIndex::open_tuned(directory.path(), tuning).expect("open");
    let mut checkpoint = 0;
    for product in &catalog.products {
        checkpoint += 1;
        index.put(product.clone(), checkpoint).await.expect("put");
    }
    checkpoint += 1;
    index
        .set_synonyms(
            Synonyms {
                groups: catalog::synonym_groups(),
            },
            checkpoint,
        )
        .await
        .expect("synonyms");
    assert!(
        index.wait_for(checkpoint, Duration::from_secs(30)).await,
        "the index did not apply the catalog"
    );
    (directory, index)
}

async fn measure(catalog: &Catalog, queries: &[Query], index: &TantivyIndex) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(queries.len());
    for query in queries {
        let mut search = SearchQuery::words(&query.text);
        search.limit = 10;
        let results = index.search(&search).await.expect("search");
        let ranked: Vec<usize> = results
            .hits
            .iter()
            .map(|hit| hit.product.id.as_u128() as usize - 1)
            .collect();
        outcomes.push(Outcome {
            category: query.category,
            text: query.text.clone(),
            ndcg: ndcg_at_10(&ranked, &query.grades),
            mrr: reciprocal_rank(&ranked, &query.grades),
            top: ranked
                .iter()
                .take(3)
                .map(|index| {
                    let grade = query.grades.get(index).copied().unwrap_or(0);
                    format!("{} [{grade}]", catalog.products[*index].name)
                })
                .collect(),
        });
    }
    outcomes
}

fn print_table(title: &str, outcomes: &[Outcome]) {
    println!("\n{title}");
    println!("| category | queries | nDCG@10 | MRR |");
    println!("| --- | ---: | ---: | ---: |");
    for (category, means) in by_category(outcomes) {
        println!(
            "| {category} | {} | {:.3} | {:.3} |",
            means.queries, means.ndcg, means.mrr
        );
    }
    let overall = means(outcomes.iter());
    println!(
        "| **overall** | {} | {:.3} | {:.3} |",
        overall.queries, overall.ndcg, overall.mrr
    );
}

fn threshold(category: &str) -> (f64, f64) {
    THRESHOLDS
        .iter()
        .find(|(name, _, _)| *name == category)
        .map(|(_, ndcg, mrr)| (*ndcg, *mrr))
        .unwrap_or_else(|| panic!("no threshold for {category}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relevance_holds_per_category_and_catches_rankings_without_boosts_or_typos() {
    let catalog = catalog::generate();
    let queries = catalog::queries(&catalog);
    assert!(
        catalog.products.len() >= 2_000,
        "{} products",
        catalog.products.len()
    );
    assert!(queries.len() >= 200, "{} queries", queries.len());

    let mut results = Vec::new();
    for (title, tuning) in [
        ("real ranking", Tuning::default()),
        (
            "without field boosts",
            Tuning {
                field_boosts: false,
                typo_tolerance: true,
            },
        ),
        (
            "without typo tolerance",
            Tuning {
                field_boosts: true,
                typo_tolerance: false,
            },
        ),
    ] {
        let (_directory, index) = index_with(&catalog, tuning).await;
        let outcomes = measure(&catalog, &queries, &index).await;
        print_table(
            &format!(
                "{title}: {} queries over {} products",
                queries.len(),
                catalog.products.len()
            ),
            &outcomes,
        );
        results.push(outcomes);
    }
    let [real, without_boosts, without_typos] = <[Vec<Outcome>; 3]>::try_from(results)
        .ok()
        .expect("three rankings");

    let mut worst: Vec<&Outcome> = real.iter().filter(|outcome| outcome.ndcg < 0.8).collect();
    worst.sort_by(|left, right| left.ndcg.total_cmp(&right.ndcg));
    println!("\nqueries of the real ranking below nDCG@10 0.8:");
    for outcome in &worst {
        println!(
            "  {} {:?}: nDCG@10 {:.3}, MRR {:.3}, top {:?}",
            outcome.category, outcome.text, outcome.ndcg, outcome.mrr, outcome.top
        );
    }

    let mut failures = Vec::new();
    for (category, means) in by_category(&real) {
        let (ndcg, mrr) = threshold(category);
        if means.ndcg < ndcg || means.mrr < mrr {
            failures.push(format!(
                "{category}: nDCG@10 {:.3} (floor {ndcg}), MRR {:.3} (floor {mrr})",
                means.ndcg, means.mrr
            ));
        }
    }
    let overall = means(real.iter());
    if overall.ndcg < OVERALL_THRESHOLD.0 || overall.mrr < OVERALL_THRESHOLD.1 {
        failures.push(format!(
            "overall: nDCG@10 {:.3}, MRR {:.3}",
            overall.ndcg, overall.mrr
        ));
    }
    assert!(failures.is_empty(), "relevance regressed: {failures:#?}");

    // The thresholds can fail: each crippled ranking falls below the nDCG@10 floor of every
    // category that depends on what it lacks, and below the overall floor.
    for (lacking, outcomes, categories) in [
        ("field boosts", &without_boosts, NEED_BOOSTS),
        ("typo tolerance", &without_typos, NEED_TYPOS),
    ] {
        let overall = means(outcomes.iter());
        assert!(
            overall.ndcg < OVERALL_THRESHOLD.0,
            "a ranking without {lacking} scores {:.3} overall, not below the floor",
            overall.ndcg
        );
        let scores = by_category(outcomes);
        for category in categories {
            let (ndcg, _) = threshold(category);
            let scored = scores[category].ndcg;
            assert!(
                scored < ndcg,
                "a ranking without {lacking} scores {scored:.3} in {category}, not below its floor {ndcg}"
            );
        }
    }
}

/// The `(field, parameters)` of every `kind` clause (`match`, `fuzzy`, `match_bool_prefix`)
/// among `should`.
fn clauses<'a>(should: &'a [Value], kind: &str) -> Vec<(&'a str, &'a Value)> {
    should
        .iter()
        .filter_map(|clause| clause.get(kind)?.as_object())
        .flat_map(|fields| fields.iter().map(|(field, body)| (field.as_str(), body)))
        .collect()
}

/// Whether `should` has, for each scored field, a `kind` clause on `word` that `accept`s.
fn on_every_field(
    should: &[Value],
    kind: &str,
    word: &str,
    accept: impl Fn(&Value) -> bool,
) -> bool {
    ["name", "brand", "description"].iter().all(|field| {
        clauses(should, kind).iter().any(|(name, body)| {
            name == field
                && (body["query"].as_str() == Some(word) || body["value"].as_str() == Some(word))
                && accept(body)
        })
    })
}

/// The clauses of an array field of `value` (none when it is missing).
fn array(value: &Value) -> Vec<Value> {
    value.as_array().cloned().unwrap_or_default()
}

/// What is wrong with `body`, the request for `text` with the synonyms `set` (of the
/// catalog's `groups`), words combined with `must`: a clause per used word, each with its
/// exact match, its fuzzy match and fuzzy term (fuzziness 1) when five letters or more, a
/// prefix clause on the last word only, the alternatives of the groups that are set and none
/// of the others; the `sku_key` term at boost 20; nothing but `published` in filter context.
fn body_problems(text: &str, body: &Value, set: &Synonyms, groups: &Synonyms) -> Vec<String> {
    let mut problems = Vec::new();
    let typed = search::query_words(text);
    let words_and_sku = &body["query"]["bool"]["must"][0]["bool"]["should"];
    let words = array(&words_and_sku[0]["bool"]["must"]);
    if words.len() != typed.len() || words.len() > search::MAX_QUERY_WORDS {
        problems.push(format!(
            "{} word clauses for {} words",
            words.len(),
            typed.len()
        ));
    }
    for (position, (word, clause)) in typed.iter().zip(&words).enumerate() {
        let should = array(&clause["bool"]["should"]);
        let is_last = position + 1 == typed.len();
        if !on_every_field(&should, "match", word, |body| {
            body.get("fuzziness").is_none()
        }) {
            problems.push(format!("{word:?} has no exact match on every field"));
        }
        if word.chars().count() >= 5 {
            let fuzzy_match = on_every_field(&should, "match", word, |body| {
                body["fuzziness"] == 1 && body["fuzzy_transpositions"] == true
            });
            let fuzzy_term = on_every_field(&should, "fuzzy", word, |body| {
                body["fuzziness"] == 1 && body["transpositions"] == true
            });
            if !fuzzy_match || !fuzzy_term {
                problems.push(format!("{word:?} lacks its fuzzy clauses (fuzziness 1)"));
            }
        } else if clauses(&should, "fuzzy")
            .iter()
            .any(|(_, body)| body["value"].as_str() == Some(word.as_str()))
        {
            problems.push(format!(
                "{word:?} is too short for a typo but has a fuzzy clause"
            ));
        }
        let prefix = on_every_field(&should, "match_bool_prefix", word, |_| true);
        if is_last != prefix {
            problems.push(format!(
                "{word:?} prefix clause: {prefix}, last word: {is_last}"
            ));
        }
        // (Unlike tantivy's, this builder also gives a synonym of five letters or more its
        // fuzzy clauses; not asserted either way here.)
        for alternative in groups.alternatives(word) {
            let expands = on_every_field(&should, "match", alternative, |_| true);
            let wanted = set.alternatives(word).any(|other| other == alternative);
            if expands != wanted {
                problems.push(format!(
                    "{word:?} expands to {alternative:?}: {expands}, synonyms set: {wanted}"
                ));
            }
            if on_every_field(&should, "match_bool_prefix", alternative, |_| true) {
                problems.push(format!(
                    "synonym {alternative:?} of {word:?} matches as a prefix"
                ));
            }
        }
    }
    let sku = &words_and_sku[1]["term"]["sku_key"];
    if sku["value"].as_str() != Some(text.trim().to_lowercase().as_str()) || sku["boost"] != 20.0 {
        problems.push(format!("SKU term {sku}"));
    }
    if body["query"]["bool"]["filter"] != serde_json::json!([{"term": {"status": "published"}}])
        || array(&body["query"]["bool"]["must"]).len() != 1
    {
        problems.push(format!("filters {}", body["query"]["bool"]));
    }
    problems
}

/// The OpenSearch adapter cannot be ranked without a server; what can be judged without one
/// is whether the body of every query of the set asks for what the semantics need.
#[test]
fn opensearch_bodies_of_the_set_ask_for_what_the_semantics_need() {
    let catalog = catalog::generate();
    let queries = catalog::queries(&catalog);
    let synonyms = Synonyms {
        groups: catalog::synonym_groups(),
    };
    let mut problems = Vec::new();
    for query in &queries {
        let search = SearchQuery::words(&query.text);
        for set in [&synonyms, &Synonyms::default()] {
            let body = search_body(&search, None, set, Words::All);
            for problem in body_problems(&query.text, &body, set, &synonyms) {
                problems.push(format!("{:?}: {problem}", query.text));
            }
        }
        if query.category == "sku" {
            let body = search_body(&search, None, &synonyms, Words::All);
            let sku = &body["query"]["bool"]["must"][0]["bool"]["should"][1]["term"]["sku_key"];
            let meant = query.grades.keys().next().expect("the product meant");
            if sku["value"].as_str() != Some(catalog.products[*meant].sku.to_lowercase().as_str()) {
                problems.push(format!(
                    "{:?}: SKU term {sku} is not the product's",
                    query.text
                ));
            }
        }
        if query.category == "fallback" {
            let any = search_body(&search, None, &synonyms, Words::Any);
            let combined = &any["query"]["bool"]["must"][0]["bool"]["should"][0]["bool"];
            let count = combined["should"].as_array().map_or(0, Vec::len);
            let typed = search::query_words(&query.text).len();
            if count != typed || combined["minimum_should_match"] != 1 {
                problems.push(format!(
                    "{:?}: fallback combines {count} words as {combined}",
                    query.text
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");

    // Filters stay out of scoring: the same words clause with every filter, the filters in
    // filter context (price, stock) or the post-filter (category, brand).
    let text = &queries[0].text;
    let mut filtered = SearchQuery::words(text);
    filtered.categories = vec!["home-kitchen".into()];
    filtered.brands = vec!["Müller".into()];
    filtered.min_price = Some(1_000);
    filtered.max_price = Some(5_000);
    filtered.in_stock = true;
    let body = search_body(&filtered, None, &synonyms, Words::All);
    let plain = search_body(&SearchQuery::words(text), None, &synonyms, Words::All);
    assert_eq!(
        body["query"]["bool"]["must"],
        plain["query"]["bool"]["must"]
    );
    assert_eq!(
        body["query"]["bool"]["filter"],
        serde_json::json!([
            {"term": {"status": "published"}},
            {"range": {"price_cents": {"gte": 1000, "lte": 5000}}},
            {"range": {"stock": {"gt": 0}}}
        ])
    );
    assert_eq!(
        body["post_filter"],
        serde_json::json!({"bool": {"filter": [
            {"terms": {"category": ["home-kitchen"]}},
            {"terms": {"brand_key": ["müller"]}}
        ]}})
    );
}

/// Every query grades at least one product relevant (a query nothing is meant for would score
/// nothing and measure nothing); prints each with how many products it grades 3, 2 and 1, for
/// reviewing the set (`cargo test -p search --test relevance -- --nocapture`).
#[test]
fn every_query_has_a_relevant_product() {
    let catalog = catalog::generate();
    for query in catalog::queries(&catalog) {
        let threes = query.grades.values().filter(|g| **g == 3).count();
        let twos = query.grades.values().filter(|g| **g == 2).count();
        let ones = query.grades.values().filter(|g| **g == 1).count();
        println!(
            "{} | {} | 3:{threes} 2:{twos} 1:{ones}",
            query.category, query.text
        );
        assert!(
            threes + twos > 0,
            "{} query {:?} grades no product relevant",
            query.category,
            query.text
        );
    }
}

/// The body check can fail: each clause the semantics need, taken out of a real body, is
/// reported.
#[test]
fn the_opensearch_body_check_reports_each_missing_clause() {
    let synonyms = Synonyms {
        groups: catalog::synonym_groups(),
    };
    let text = "compact tv kettle";
    let body = search_body(&SearchQuery::words(text), None, &synonyms, Words::All);
    assert!(body_problems(text, &body, &synonyms, &synonyms).is_empty());
    let words = "/query/bool/must/0/bool/should/0/bool/must";
    let remove = |pointer: &str, kind: &str| -> Value {
        let mut changed = body.clone();
        if let Some(Value::Array(should)) = changed.pointer_mut(pointer) {
            should.retain(|clause| clause.get(kind).is_none());
        }
        changed
    };
    let without_fuzzy = remove(&format!("{words}/0/bool/should"), "fuzzy");
    let without_prefix = remove(&format!("{words}/2/bool/should"), "match_bool_prefix");
    let mut without_synonym = body.clone();
    if let Some(Value::Array(should)) =
        without_synonym.pointer_mut(&format!("{words}/1/bool/should"))
    {
        should.retain(|clause| !clause.to_string().contains("television"));
    }
    let mut weak_sku = body.clone();
    weak_sku["query"]["bool"]["must"][0]["bool"]["should"][1]["term"]["sku_key"]["boost"] =
        serde_json::json!(1.0);
    let mut scored_filter = body.clone();
    scored_filter["query"]["bool"]["must"]
        .as_array_mut()
        .expect("must")
        .push(serde_json::json!({"term": {"status": "published"}}));
    let long = "one two three four five six seven eight nine ten eleven";
    let mut eleven = search_body(&SearchQuery::words(long), None, &synonyms, Words::All);
    if let Some(Value::Array(clauses)) = eleven.pointer_mut(words) {
        clauses.push(clauses[0].clone());
    }
    for (what, changed, text) in [
        ("no fuzzy term", without_fuzzy, text),
        ("no prefix", without_prefix, text),
        ("no synonym", without_synonym, text),
        ("weak SKU", weak_sku, text),
        ("scored filter", scored_filter, text),
        ("eleven words", eleven, long),
    ] {
        assert!(
            !body_problems(text, &changed, &synonyms, &synonyms).is_empty(),
            "{what} went unnoticed"
        );
    }
}
