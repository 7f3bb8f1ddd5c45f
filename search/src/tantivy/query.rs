//! Building a tantivy query from a [`SearchQuery`]: the words (exact, fuzzy, prefix, SKU)
//! scored by field, and the filters in constant-score clauses that do not change scores.

use std::ops::Bound;

use events::ProductStatus;
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, Query, RangeQuery,
    TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::Term;

use super::schema::{analyzer, folding, forms, Fields};
use crate::{allowed_edits, words, SearchQuery};

type Clause = (Occur, Box<dyn Query>);

fn boosted(query: impl Query + 'static, boost: f32) -> Clause {
    (
        Occur::Should,
        Box::new(BoostQuery::new(Box::new(query), boost)),
    )
}

/// The whole query (filters and words) and whether it has words. `all_words`: every word
/// must match, or (the fallback) any may.
pub(super) fn full_query(
    fields: &Fields,
    query: &SearchQuery,
    all_words: bool,
) -> (Box<dyn Query>, bool) {
    let text = text_query(fields, &query.text, all_words);
    let has_text = text.is_some();
    let mut clauses = filters(fields, query);
    clauses.push((Occur::Must, text.unwrap_or_else(|| Box::new(AllQuery))));
    (Box::new(BooleanQuery::new(clauses)), has_text)
}

/// The query's text part: `None` for a search without words (everything).
fn text_query(fields: &Fields, text: &str, all_words: bool) -> Option<Box<dyn Query>> {
    let typed = words(text);
    let mut stemmer = analyzer();
    let mut fold = folding();
    let last = typed.len().checked_sub(1)?;
    let occur = if all_words {
        Occur::Must
    } else {
        Occur::Should
    };
    let clauses: Vec<Clause> = typed
        .iter()
        .enumerate()
        .filter_map(|(index, word)| {
            let (stem, folded) = forms(&mut stemmer, &mut fold, word)?;
            let alternatives = word_alternatives(fields, word, &stem, &folded, index == last);
            Some((
                occur,
                Box::new(BooleanQuery::new(alternatives)) as Box<dyn Query>,
            ))
        })
        .collect();
    if clauses.is_empty() {
        return None;
    }
    let words_query: Box<dyn Query> = Box::new(BooleanQuery::new(clauses));
    // A query equal to a SKU finds that product first.
    let sku = TermQuery::new(
        Term::from_field_text(fields.sku, &text.trim().to_lowercase()),
        IndexRecordOption::Basic,
    );
    Some(Box::new(BooleanQuery::new(vec![
        (Occur::Should, words_query),
        boosted(sku, 20.0),
    ])))
}

/// Where one typed word may match: exactly (by its stem) in name ×3, brand ×2 or description
/// ×1; one edit off at half the weight when it is long enough; as a prefix when it is the last
/// word (search as you type).
fn word_alternatives(
    fields: &Fields,
    word: &str,
    stem: &str,
    folded: &str,
    is_last: bool,
) -> Vec<Clause> {
    let scored: [(Field, f32); 3] = [
        (fields.name, 3.0),
        (fields.brand, 2.0),
        (fields.description, 1.0),
    ];
    let edits = allowed_edits(word);
    let mut alternatives = Vec::new();
    for (field, boost) in scored {
        let exact = TermQuery::new(
            Term::from_field_text(field, stem),
            IndexRecordOption::WithFreqs,
        );
        alternatives.push(boosted(exact, boost));
        if edits > 0 {
            // Against the stem and the unstemmed word: a typo can throw the stemmer off
            // ("wireles" stems to "wirele", one edit from nothing indexed).
            let mut typed_forms = vec![stem];
            if folded != stem {
                typed_forms.push(folded);
            }
            for form in typed_forms {
                let fuzzy = FuzzyTermQuery::new(Term::from_field_text(field, form), edits, true);
                alternatives.push(boosted(fuzzy, boost * 0.5));
            }
        }
        if is_last {
            let prefix = FuzzyTermQuery::new_prefix(Term::from_field_text(field, folded), 0, true);
            alternatives.push(boosted(prefix, boost * 0.4));
        }
    }
    alternatives
}

/// The filters, each a `Must` clause scoring nothing: published only, category, brand
/// (case-insensitive), inclusive price bounds, in stock.
fn filters(fields: &Fields, query: &SearchQuery) -> Vec<Clause> {
    let constant = |query: Box<dyn Query>| -> Clause {
        (Occur::Must, Box::new(ConstScoreQuery::new(query, 0.0)))
    };
    let term = |field: Field, text: &str| -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, text),
            IndexRecordOption::Basic,
        ))
    };
    let mut filters = vec![constant(term(
        fields.status,
        ProductStatus::Published.as_str(),
    ))];
    let any_of = |field: Field, values: Vec<String>| -> Box<dyn Query> {
        Box::new(BooleanQuery::new(
            values
                .iter()
                .map(|value| (Occur::Should, term(field, value)))
                .collect(),
        ))
    };
    if !query.categories.is_empty() {
        filters.push(constant(any_of(fields.category, query.categories.clone())));
    }
    if !query.brands.is_empty() {
        let keys = query.brands.iter().map(|brand| brand.to_lowercase()).collect();
        filters.push(constant(any_of(fields.brand_key, keys)));
    }
    if query.min_price.is_some() || query.max_price.is_some() {
        let lower = query.min_price.map_or(Bound::Unbounded, |min| {
            Bound::Included(Term::from_field_i64(fields.price, min))
        });
        let upper = query.max_price.map_or(Bound::Unbounded, |max| {
            Bound::Included(Term::from_field_i64(fields.price, max))
        });
        filters.push(constant(Box::new(RangeQuery::new(lower, upper))));
    }
    if query.in_stock {
        filters.push(constant(Box::new(RangeQuery::new(
            Bound::Excluded(Term::from_field_i64(fields.stock, 0)),
            Bound::Unbounded,
        ))));
    }
    filters
}
