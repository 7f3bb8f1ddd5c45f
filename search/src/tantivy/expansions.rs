//! The terms a typo-tolerant or partly typed word stands for, remembered per index
//! generation.
//!
//! A fuzzy word (one edit) or a prefix is a walk of a field's whole term dictionary with an
//! automaton, in every segment: profiled, that walk was the largest part of a search's cost.
//! Shoppers' words repeat even when their queries do not (the long tail combines the same
//! catalog words), so the terms a (field, word, kind) expands to are kept for as long as the
//! searcher's generation (the set of segments) stays the same; a commit starts a new
//! generation and the old entries are never read again. The query then matches the kept terms
//! directly, scored as tantivy scores an automaton query (a constant, the clause's boost).

use std::sync::Arc;

use levenshtein_automata::{Distance, LevenshteinAutomatonBuilder, DFA};
use tantivy::query::{BooleanQuery, ConstScoreQuery, EmptyQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{Searcher, Term};

/// The most terms one expansion keeps (a one- or two-letter prefix of a large catalog could
/// stand for thousands): the most frequent are kept when there are more.
const MAX_TERMS: usize = 64;

/// What a word stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    /// Every term one edit away (a transposition counts one).
    OneEdit,
    /// Every term the word begins.
    Prefix,
}

type Key = (u64, u32, String, Kind);

/// See the module documentation.
pub(super) struct Expansions {
    kept: moka::sync::Cache<Key, Arc<Vec<Term>>>,
    one_edit: LevenshteinAutomatonBuilder,
}

impl Default for Expansions {
    fn default() -> Self {
        Expansions {
            kept: moka::sync::Cache::new(50_000),
            one_edit: LevenshteinAutomatonBuilder::new(1, true),
        }
    }
}

/// A Levenshtein DFA as an automaton over a term dictionary.
struct Automaton(DFA);

impl tantivy_fst::Automaton for Automaton {
    type State = u32;

    fn start(&self) -> u32 {
        self.0.initial_state()
    }

    fn is_match(&self, state: &u32) -> bool {
        matches!(self.0.distance(*state), Distance::Exact(_))
    }

    fn can_match(&self, state: &u32) -> bool {
        *state != levenshtein_automata::SINK_STATE
    }

    fn accept(&self, state: &u32, byte: u8) -> u32 {
        self.0.transition(*state, byte)
    }
}

/// The smallest string above every string that starts with `prefix`.
pub(super) fn after_prefix(prefix: &str) -> Option<String> {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0xff {
            bytes.push(last + 1);
            return String::from_utf8(bytes).ok();
        }
    }
    None
}

impl Expansions {
    /// The terms of `field` that `word` stands for as `kind`, in `searcher`'s segments.
    pub fn terms(
        &self,
        searcher: &Searcher,
        field: Field,
        word: &str,
        kind: Kind,
    ) -> Arc<Vec<Term>> {
        let key = (
            searcher.generation().generation_id(),
            field.field_id(),
            word.to_owned(),
            kind,
        );
        if let Some(terms) = self.kept.get(&key) {
            return terms;
        }
        let terms = Arc::new(self.expand(searcher, field, word, kind));
        self.kept.insert(key, terms.clone());
        terms
    }

    fn expand(&self, searcher: &Searcher, field: Field, word: &str, kind: Kind) -> Vec<Term> {
        let mut found: std::collections::HashMap<Vec<u8>, u64> = Default::default();
        for segment in searcher.segment_readers() {
            let Ok(inverted) = segment.inverted_index(field) else {
                continue;
            };
            let dictionary = inverted.terms();
            let stream = match kind {
                Kind::OneEdit => dictionary
                    .search(Automaton(self.one_edit.build_dfa(word)))
                    .into_stream()
                    .map(Streamed::Fuzzy),
                Kind::Prefix => {
                    let mut range = dictionary.range().ge(word.as_bytes());
                    if let Some(end) = after_prefix(word) {
                        range = range.lt(end.as_bytes());
                    }
                    range.into_stream().map(Streamed::Range)
                }
            };
            let Ok(mut stream) = stream else {
                continue;
            };
            while let Some((key, frequency)) = stream.next() {
                *found.entry(key.to_vec()).or_default() += frequency;
            }
        }
        let mut terms: Vec<(Vec<u8>, u64)> = found.into_iter().collect();
        terms.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        terms.truncate(MAX_TERMS);
        terms
            .into_iter()
            .filter_map(|(bytes, _)| {
                let text = std::str::from_utf8(&bytes).ok()?;
                Some(Term::from_field_text(field, text))
            })
            .collect()
    }
}

/// A stream of terms with their document frequencies, of either kind of walk.
enum Streamed<'a> {
    Fuzzy(tantivy::termdict::TermStreamer<'a, Automaton>),
    Range(tantivy::termdict::TermStreamer<'a>),
}

impl Streamed<'_> {
    fn next(&mut self) -> Option<(&[u8], u64)> {
        match self {
            Streamed::Fuzzy(stream) => stream
                .next()
                .map(|(key, info)| (key, u64::from(info.doc_freq))),
            Streamed::Range(stream) => stream
                .next()
                .map(|(key, info)| (key, u64::from(info.doc_freq))),
        }
    }
}

/// A query matching any of `terms`, each match scoring 1 (boost it like any clause).
pub(super) fn any_term(terms: &[Term]) -> Box<dyn Query> {
    if terms.is_empty() {
        return Box::new(EmptyQuery);
    }
    let clauses: Vec<(Occur, Box<dyn Query>)> = terms
        .iter()
        .map(|term| {
            (
                Occur::Should,
                Box::new(TermQuery::new(term.clone(), IndexRecordOption::Basic)) as Box<dyn Query>,
            )
        })
        .collect();
    Box::new(ConstScoreQuery::new(
        Box::new(BooleanQuery::new(clauses)),
        1.0,
    ))
}

#[cfg(test)]
mod tests {
    use super::after_prefix;

    #[test]
    fn the_end_of_a_prefix_range_is_above_every_word_with_the_prefix() {
        assert_eq!(after_prefix("ke").as_deref(), Some("kf"));
        assert!("kettle" < after_prefix("ke").unwrap_or_default().as_str());
        assert_eq!(after_prefix(""), None);
    }
}
