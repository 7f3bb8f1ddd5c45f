//! Suggestions and did-you-mean from the `words` field (the names and brands of published
//! products, folded, not stemmed): completions of the last typed word by how many products
//! use the word, and corrections of words the catalog does not have to the most used word at
//! the fewest edits. Both read a bounded number of terms whatever the input.

use std::collections::BTreeMap;
use std::sync::Arc;

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{Searcher, Term};

use super::expansions::after_prefix;
use super::query::{full_query, Context, Except};
use super::reader::unavailable;
use super::schema::{folding, stored, tokens, Fields};
use crate::{edit_distance, query_words, SearchError, SearchQuery, SuggestQuery, Suggestions};

/// How many terms of one segment a completion or a correction reads at most.
const MAX_TERMS_READ: usize = 20_000;

/// The terms of `field` in `[from, to)` across the segments, with how many documents use
/// each, at most [`MAX_TERMS_READ`] per segment.
fn terms_between(
    searcher: &Searcher,
    field: Field,
    from: &str,
    to: Option<&str>,
) -> BTreeMap<String, u64> {
    let mut found: BTreeMap<String, u64> = BTreeMap::new();
    for segment in searcher.segment_readers() {
        let Ok(inverted) = segment.inverted_index(field) else {
            continue;
        };
        let mut range = inverted.terms().range().ge(from.as_bytes());
        if let Some(to) = to {
            range = range.lt(to.as_bytes());
        }
        let Ok(mut stream) = range.into_stream() else {
            continue;
        };
        let mut read = 0;
        while let Some((key, info)) = stream.next() {
            read += 1;
            if read > MAX_TERMS_READ {
                break;
            }
            if let Ok(text) = std::str::from_utf8(key) {
                *found.entry(text.to_owned()).or_default() += u64::from(info.doc_freq);
            }
        }
    }
    found
}

/// How many completions of the last word are counted against the words before it.
const CANDIDATES: usize = 20;

/// How many published products have every one of `before` and `word` in their name or brand.
fn together(
    searcher: &Searcher,
    field: Field,
    before: &[String],
    word: &str,
) -> Result<u64, SearchError> {
    let clauses: Vec<(Occur, Box<dyn Query>)> = before
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(word))
        .map(|text| {
            let term = Term::from_field_text(field, text);
            (
                Occur::Must,
                Box::new(TermQuery::new(term, IndexRecordOption::Basic)) as Box<dyn Query>,
            )
        })
        .collect();
    let count = searcher
        .search(&BooleanQuery::new(clauses), &Count)
        .map_err(unavailable)?;
    Ok(count as u64)
}

/// A typed word as the `words` field holds it.
fn folded(word: &str) -> Option<String> {
    tokens(&mut folding(), word).into_iter().next()
}

/// Completions and products for what the shopper has typed so far.
pub(super) fn suggest(
    searcher: &Searcher,
    context: Context<'_>,
    query: &SuggestQuery,
) -> Result<Suggestions, SearchError> {
    let typed: Vec<String> = query_words(&query.text)
        .iter()
        .filter_map(|word| folded(word))
        .collect();
    let Some((last, before)) = typed.split_last() else {
        return Ok(Suggestions::default());
    };
    let mut completions: Vec<(String, u64)> = terms_between(
        searcher,
        context.fields.words,
        last,
        after_prefix(last).as_deref(),
    )
    .into_iter()
    .collect();
    completions.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    if !before.is_empty() {
        // After other words, a completion counts the products that have them all: "wireless
        // hea" completes to "headphones" before the more common "heavy".
        completions.truncate(CANDIDATES);
        for (word, uses) in &mut completions {
            *uses = together(searcher, context.fields.words, before, word)?;
        }
        completions.retain(|(_, uses)| *uses > 0);
        completions.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    }
    let queries = completions
        .into_iter()
        .take(query.limit)
        .map(|(word, _)| {
            let mut words = before.to_vec();
            words.push(word);
            words.join(" ")
        })
        .collect();
    let search = SearchQuery {
        limit: query.limit,
        ..SearchQuery::words(&typed.join(" "))
    };
    let (matching, _) = full_query(context, &search, true, Except::Nothing);
    let hits = searcher
        .search(
            &*matching,
            &TopDocs::with_limit(query.limit.max(1)).order_by_score(),
        )
        .map_err(unavailable)?;
    let products = hits
        .into_iter()
        .filter_map(|(_, address)| stored(context.fields, searcher, address))
        .map(Arc::new)
        .collect();
    Ok(Suggestions { queries, products })
}

/// The query with each word the catalog does not have replaced by the catalog word closest to
/// it (at most one edit for words under five letters, two from five), most used first; `None`
/// when no word needs or has a correction.
pub(super) fn did_you_mean(
    searcher: &Searcher,
    fields: &Fields,
    typed: &[String],
) -> Option<String> {
    let mut corrected = Vec::with_capacity(typed.len());
    let mut changed = false;
    // The vocabulary is read once per search, and only when a word needs a correction.
    let mut vocabulary: Option<BTreeMap<String, u64>> = None;
    for word in typed {
        let Some(word) = folded(word) else {
            continue;
        };
        let known = searcher
            .doc_freq(&Term::from_field_text(fields.words, &word))
            .unwrap_or(0)
            > 0;
        if known || word.chars().count() < 3 {
            corrected.push(word);
            continue;
        }
        let terms =
            vocabulary.get_or_insert_with(|| terms_between(searcher, fields.words, "", None));
        match closest(terms, &word) {
            Some(better) => {
                corrected.push(better);
                changed = true;
            }
            None => corrected.push(word),
        }
    }
    changed.then(|| corrected.join(" "))
}

/// The most used of `terms` within the allowed edits of `word` (only terms of a near
/// length are compared).
fn closest(terms: &BTreeMap<String, u64>, word: &str) -> Option<String> {
    let length = word.chars().count();
    let allowed = if length >= 5 { 2 } else { 1 };
    let mut best: Option<(usize, u64, &String)> = None;
    for (term, &uses) in terms {
        if term.chars().count().abs_diff(length) > allowed {
            continue;
        }
        let distance = edit_distance(term, word);
        if distance == 0 || distance > allowed {
            continue;
        }
        let better = match &best {
            None => true,
            Some((best_distance, best_uses, _)) => {
                distance < *best_distance || (distance == *best_distance && uses > *best_uses)
            }
        };
        if better {
            best = Some((distance, uses, term));
        }
    }
    best.map(|(_, _, term)| term.clone())
}
