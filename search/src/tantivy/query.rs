//! Building a tantivy query from a [`SearchQuery`]: the words (exact, fuzzy, prefix, SKU)
//! scored by field, and the filters in constant-score clauses that do not change scores.

use std::ops::Bound;

use events::ProductStatus;
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{Searcher, Term};

use super::expansions::{any_term, Expansions, Kind};
use super::schema::{analyzer, folding, forms, Fields};
use super::Tuning;
use crate::{allowed_edits, query_words, SearchQuery, Synonyms};

type Clause = (Occur, Box<dyn Query>);

fn boosted(query: impl Query + 'static, boost: f32) -> Clause {
    boosted_box(Box::new(query), boost)
}

fn boosted_box(query: Box<dyn Query>, boost: f32) -> Clause {
    (Occur::Should, Box::new(BoostQuery::new(query, boost)))
}

/// What a query is built from besides the search itself.
#[derive(Clone, Copy)]
pub(super) struct Context<'a> {
    pub fields: &'a Fields,
    pub searcher: &'a Searcher,
    pub expansions: &'a Expansions,
    pub synonyms: &'a Synonyms,
    pub tuning: Tuning,
}

/// Which of the search's own filters a query applies: all of them, or all but the category or
/// the brand filter (the pass that counts that facet as if it were not ticked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Except {
    Nothing,
    Category,
    Brand,
}

/// The whole query (filters and words) and whether it has words. `all_words`: every word
/// must match, or (the fallback) any may.
pub(super) fn full_query(
    context: Context<'_>,
    query: &SearchQuery,
    all_words: bool,
    except: Except,
) -> (Box<dyn Query>, bool) {
    let text = text_query(context, &query.text, all_words);
    let has_text = text.is_some();
    let mut clauses = filters(context.fields, query, except);
    clauses.push((Occur::Must, text.unwrap_or_else(|| Box::new(AllQuery))));
    (Box::new(BooleanQuery::new(clauses)), has_text)
}

/// The query's text part: `None` for a search without words (everything).
fn text_query(context: Context<'_>, text: &str, all_words: bool) -> Option<Box<dyn Query>> {
    let fields = context.fields;
    let typed = query_words(text);
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
            let typed_word = Typed {
                word,
                stem: &stem,
                folded: &folded,
                is_last: index == last,
            };
            let mut alternatives = word_alternatives(context, typed_word);
            // A synonym matches as its own word would, exactly (no typo, no prefix).
            // A synonym is looked up by the word and by its stem ("tvs" is a "tv").
            let mut synonyms: Vec<&str> = context.synonyms.alternatives(&folded).collect();
            for other in context.synonyms.alternatives(&stem) {
                if !synonyms.contains(&other) {
                    synonyms.push(other);
                }
            }
            for synonym in synonyms {
                if let Some((stem, folded)) = forms(&mut stemmer, &mut fold, synonym) {
                    let exact = Typed {
                        word: "",
                        stem: &stem,
                        folded: &folded,
                        is_last: false,
                    };
                    alternatives.extend(word_alternatives(context, exact));
                }
            }
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

/// One typed word in the forms the index compares.
#[derive(Clone, Copy)]
struct Typed<'a> {
    /// As typed (empty for a synonym: no typo tolerance).
    word: &'a str,
    stem: &'a str,
    folded: &'a str,
    is_last: bool,
}

/// Where one typed word may match: exactly (by its stem) in name ×3, brand ×2 or description
/// ×1; one edit off at half the weight when it is long enough; as a prefix when it is the last
/// word (search as you type).
fn word_alternatives(context: Context<'_>, typed: Typed<'_>) -> Vec<Clause> {
    let (fields, tuning) = (context.fields, context.tuning);
    let Typed {
        word,
        stem,
        folded,
        is_last,
    } = typed;
    let boosts = if tuning.field_boosts {
        [3.0, 2.0, 1.0]
    } else {
        [1.0, 1.0, 1.0]
    };
    let scored: [(Field, f32); 3] = [
        (fields.name, boosts[0]),
        (fields.brand, boosts[1]),
        (fields.description, boosts[2]),
    ];
    let edits = if tuning.typo_tolerance {
        allowed_edits(word)
    } else {
        0
    };
    let mut alternatives = Vec::new();
    for (field, boost) in scored {
        let exact = TermQuery::new(
            Term::from_field_text(field, stem),
            IndexRecordOption::WithFreqs,
        );
        alternatives.push(boosted(exact, boost));
        // One clause for everything near the word in this field: one edit from the stem or
        // from the unstemmed word (a typo can throw the stemmer off: "wireles" stems to
        // "wirele", one edit from nothing indexed), and for the last word every term it begins.
        // One union of distinct terms, not one per kind: the fewer scorers an intersection
        // seeks into, the cheaper a search (profiled: the union scorers were most of it).
        // The exact term is left out: it has its own clause, and a common word's posting list
        // read twice is what made a union slow.
        let exact_term = Term::from_field_text(field, stem);
        let mut near: Vec<Term> = Vec::new();
        let mut add = |terms: &[Term]| {
            for term in terms {
                if *term != exact_term && !near.contains(term) {
                    near.push(term.clone());
                }
            }
        };
        if edits > 0 {
            add(&context
                .expansions
                .terms(context.searcher, field, stem, Kind::OneEdit));
            if folded != stem {
                add(&context
                    .expansions
                    .terms(context.searcher, field, folded, Kind::OneEdit));
            }
        }
        if is_last {
            add(&context
                .expansions
                .terms(context.searcher, field, folded, Kind::Prefix));
        }
        if !near.is_empty() {
            alternatives.push(boosted_box(any_term(&near), boost * 0.5));
        }
    }
    if edits > 0 {
        // The typed word one edit from a name or brand word as written: a typo in a word the
        // stemmer shortens ("hikng" is two edits from the stem "hike" but one from "hiking").
        let terms = context
            .expansions
            .terms(context.searcher, fields.words, folded, Kind::OneEdit);
        alternatives.push(boosted_box(any_term(&terms), boosts[0] * 0.5));
    }
    alternatives
}

/// The filters, each a `Must` clause scoring nothing: published only, category, brand
/// (case-insensitive), inclusive price bounds, in stock; without the one `except` names.
fn filters(fields: &Fields, query: &SearchQuery, except: Except) -> Vec<Clause> {
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
    if !query.categories.is_empty() && except != Except::Category {
        filters.push(constant(any_of(fields.category, query.categories.clone())));
    }
    if !query.brands.is_empty() && except != Except::Brand {
        let keys = query
            .brands
            .iter()
            .map(|brand| brand.to_lowercase())
            .collect();
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
