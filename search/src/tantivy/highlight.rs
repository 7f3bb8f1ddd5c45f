//! Highlights: the document's own words that match a query word (the same word, one edit off,
//! or continuing the last word), marked in `<em>` by tantivy's snippet generator.
//!
//! The cost is bounded whatever the input: the typed words are analysed once per search
//! ([`Wanted::of`]), only the page's hits are highlighted, a description is looked at only in its
//! first [`HIGHLIGHT_CHARS`] characters, and a document word is compared with a typed word by
//! an allocation-free check for one edit.

use std::collections::{BTreeMap, HashMap};

use projectors::read_model::ProductView;
use tantivy::schema::Field;
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::{TextAnalyzer, TokenStream};
use tantivy::Score;

use super::schema::{analyzer, folding, forms, Fields};
use crate::{allowed_edits, Highlight};

/// How much of a field highlighting reads: a fragment is 160 characters; a shopper sees the
/// first one that matches within this prefix.
pub(super) const HIGHLIGHT_CHARS: usize = 1_000;

/// How many distinct document words one search remembers the verdict of.
const MEMO_WORDS: usize = 10_000;

/// A typed word as highlighting compares it.
struct Word {
    stem: String,
    folded: String,
    edits: bool,
    last: bool,
}

/// The typed words of one search, analysed once.
pub(super) struct Wanted {
    words: Vec<Word>,
    stemmer: TextAnalyzer,
    fold: TextAnalyzer,
    /// Document words (folded) already judged. The pages of one search share most of their
    /// words, so each is stemmed and compared once.
    memo: HashMap<String, bool>,
    plain_words: Vec<String>,
}

impl Wanted {
    /// The words of a search (already cut to the words that are used), with their synonyms.
    pub(super) fn of(typed: &[String], synonyms: &crate::Synonyms) -> Wanted {
        let mut stemmer = analyzer();
        let mut fold = folding();
        let mut words = Vec::new();
        for (index, word) in typed.iter().enumerate() {
            let Some((stem, folded)) = forms(&mut stemmer, &mut fold, word) else {
                continue;
            };
            let by_stem: Vec<&str> = synonyms.alternatives(&stem).collect();
            for synonym in synonyms.alternatives(&folded).chain(by_stem) {
                if let Some((stem, folded)) = forms(&mut stemmer, &mut fold, synonym) {
                    words.push(Word {
                        stem,
                        folded,
                        edits: false,
                        last: false,
                    });
                }
            }
            words.push(Word {
                stem,
                folded,
                edits: allowed_edits(word) > 0,
                last: index + 1 == typed.len(),
            });
        }
        Wanted {
            words,
            stemmer,
            fold,
            memo: HashMap::new(),
            plain_words: Vec::new(),
        }
    }

    fn matches(&self, token: &str, plain: &str) -> bool {
        self.words.iter().any(|word| {
            token == word.stem
                || plain == word.folded
                || (word.edits
                    && (within_one_edit(token, &word.stem) || within_one_edit(plain, &word.folded)))
                || (word.last && plain.starts_with(word.folded.as_str()))
        })
    }

    /// The highlights of `product`.
    pub(super) fn highlight(&mut self, fields: &Fields, product: &ProductView) -> Highlight {
        if self.words.is_empty() {
            return Highlight::default();
        }
        Highlight {
            name: self.marked(fields.name, bounded(&product.name)),
            description: self.marked(fields.description, bounded(&product.description)),
        }
    }

    /// `value` with the words matching in `<em>`, `None` when none matches.
    fn marked(&mut self, field: Field, value: &str) -> Option<String> {
        let mut terms = BTreeMap::new();
        let mut plain_words = std::mem::take(&mut self.plain_words);
        plain_words.clear();
        {
            let mut stream = self.fold.token_stream(value);
            while let Some(token) = stream.next() {
                plain_words.push(token.text.clone());
            }
        }
        for plain in &plain_words {
            if terms.contains_key(plain) {
                continue;
            }
            let matched = match self.memo.get(plain) {
                Some(matched) => *matched,
                None => {
                    let matched = first_token(&mut self.stemmer, plain)
                        .is_some_and(|stem| self.matches(&stem, plain));
                    if self.memo.len() < MEMO_WORDS {
                        self.memo.insert(plain.clone(), matched);
                    }
                    matched
                }
            };
            if matched {
                terms.insert(plain.clone(), 1.0 as Score);
            }
        }
        self.plain_words = plain_words;
        if terms.is_empty() {
            return None;
        }
        // The fragment is cut by the folding analyzer (no stemming) over the folded words that
        // matched: the same words, found without stemming the text a second time.
        let generator = SnippetGenerator::new(terms, self.fold.clone(), field, 160);
        let mut snippet = generator.snippet(value);
        snippet.set_snippet_prefix_postfix("<em>", "</em>");
        let html = snippet.to_html();
        (!html.is_empty()).then_some(html)
    }
}

fn first_token(analyzer: &mut TextAnalyzer, word: &str) -> Option<String> {
    let mut stream = analyzer.token_stream(word);
    stream.next().map(|token| token.text.clone())
}

/// The first [`HIGHLIGHT_CHARS`] characters of `value`.
fn bounded(value: &str) -> &str {
    match value.char_indices().nth(HIGHLIGHT_CHARS) {
        Some((end, _)) => &value[..end],
        None => value,
    }
}

/// Whether `left` and `right` are at most one edit apart (a letter inserted, removed, replaced,
/// or two adjacent letters swapped), in one pass without allocating.
pub(crate) fn within_one_edit(left: &str, right: &str) -> bool {
    let (a, b) = (left.as_bytes(), right.as_bytes());
    if a == b {
        return true;
    }
    if !left.is_ascii() || !right.is_ascii() {
        return crate::edit_distance(left, right) <= 1;
    }
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if long.len() - short.len() > 1 {
        return false;
    }
    let prefix = short.iter().zip(long).take_while(|(x, y)| x == y).count();
    if short.len() == long.len() {
        let rest = prefix + 1;
        // One letter replaced, or two adjacent letters swapped.
        short[rest..] == long[rest..]
            || (rest < short.len()
                && short[prefix] == long[rest]
                && short[rest] == long[prefix]
                && short[rest + 1..] == long[rest + 1..])
    } else {
        // One letter inserted into the shorter.
        short[prefix..] == long[prefix + 1..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit_distance;

    #[test]
    fn one_edit_agrees_with_the_edit_distance() {
        let words = [
            "",
            "a",
            "ab",
            "ba",
            "abc",
            "acb",
            "bac",
            "kettle",
            "kettel",
            "ketle",
            "kettles",
            "laptop",
            "laptpo",
            "lpatop",
            "headphones",
            "headphnes",
            "xettle",
            "kettlx",
            "abcd",
        ];
        for left in words {
            for right in words {
                assert_eq!(
                    within_one_edit(left, right),
                    edit_distance(left, right) <= 1,
                    "{left:?} {right:?}"
                );
            }
        }
    }

    #[test]
    fn only_the_first_characters_are_read() {
        let long = "word ".repeat(2_000);
        assert_eq!(bounded(&long).chars().count(), HIGHLIGHT_CHARS);
        assert_eq!(bounded("short"), "short");
        let accents = "é".repeat(3_000);
        assert_eq!(bounded(&accents).chars().count(), HIGHLIGHT_CHARS);
    }
}
