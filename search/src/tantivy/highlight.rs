//! Highlights: the document's own words that match a query word (the same word, one edit off,
//! or continuing the last word), marked in `<em>` by tantivy's snippet generator.

use std::collections::BTreeMap;

use projectors::read_model::ProductView;
use tantivy::schema::Field;
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::Score;

use super::schema::{analyzer, folding, forms, Fields};
use crate::{allowed_edits, edit_distance, words, Highlight};

/// A typed word as highlighting compares it.
struct Wanted {
    stem: String,
    folded: String,
    edits: u8,
    last: bool,
}

impl Wanted {
    /// Whether a document word (as `token`, its stem, and `plain`, folded) matches this one.
    fn matches(&self, token: &str, plain: &str) -> bool {
        let edits = usize::from(self.edits);
        token == self.stem
            || plain == self.folded
            || (self.edits > 0
                && (edit_distance(token, &self.stem) <= edits
                    || edit_distance(plain, &self.folded) <= edits))
            || (self.last && plain.starts_with(self.folded.as_str()))
    }
}

/// The highlights of `product` for the words of `text`.
pub(super) fn highlight(fields: &Fields, text: &str, product: &ProductView) -> Highlight {
    let typed = words(text);
    if typed.is_empty() {
        return Highlight::default();
    }
    let mut stemmer = analyzer();
    let mut fold = folding();
    let wanted: Vec<Wanted> = typed
        .iter()
        .enumerate()
        .filter_map(|(index, word)| {
            let (stem, folded) = forms(&mut stemmer, &mut fold, word)?;
            Some(Wanted {
                stem,
                folded,
                edits: allowed_edits(word),
                last: index == typed.len() - 1,
            })
        })
        .collect();
    let mut marked = |field: Field, value: &str| -> Option<String> {
        marked_fragment(&mut stemmer, &mut fold, &wanted, field, value)
    };
    Highlight {
        name: marked(fields.name, &product.name),
        description: marked(fields.description, &product.description),
    }
}

/// `value` with the words matching `wanted` in `<em>`, `None` when none matches.
fn marked_fragment(
    stemmer: &mut TextAnalyzer,
    fold: &mut TextAnalyzer,
    wanted: &[Wanted],
    field: Field,
    value: &str,
) -> Option<String> {
    let mut terms = BTreeMap::new();
    for word in words(value) {
        let Some((token, plain)) = forms(stemmer, fold, &word) else {
            continue;
        };
        if wanted.iter().any(|typed| typed.matches(&token, &plain)) {
            terms.insert(token, 1.0 as Score);
        }
    }
    if terms.is_empty() {
        return None;
    }
    let generator = SnippetGenerator::new(terms, analyzer(), field, 160);
    let mut snippet = generator.snippet(value);
    snippet.set_snippet_prefix_postfix("<em>", "</em>");
    let html = snippet.to_html();
    (!html.is_empty()).then_some(html)
}
