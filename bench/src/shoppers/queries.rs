//! What the search mixes of `catalog-bench shoppers` type: a vocabulary built from the
//! catalog sample, Zipf draws over it (with a share of typos), a long tail that never repeats
//! within a run, and autocomplete prefixes.
//!
//! Real search traffic has a head and a tail: a few queries ("headphones", "acme kettle")
//! make up much of it and repeat all day, while most distinct queries are seen once. A cache
//! only helps the head, so the tool can send either on its own (`search-head`: the top `N`
//! queries; `search-tail`: never the same query twice) or the two mixed (`search`: Zipf over
//! the whole vocabulary, the head repeating by itself).
//!
//! Why the tail never repeats, whatever the server's normalisation of case, spacing and word
//! order: query number `n` is a set of distinct tail words (the `n`-th set in a fixed
//! permutation of all sets of 3 words, then of 4, …), and distinct numbers give distinct sets.
//! A typo replaces one word by a variant that is not a tail word and that no other tail word
//! yields, so the set, and with it the number, can be read back from the typed text: two
//! distinct numbers never give texts with the same words.

use std::collections::{HashMap, HashSet};

use rand::seq::SliceRandom;
use rand::Rng;
use rand_distr::{Distribution, Zipf};

/// Words too common to be a query on their own.
const STOPWORDS: &[&str] = &[
    "an", "and", "at", "by", "co", "for", "in", "of", "on", "or", "the", "to", "with",
];

/// Sizes of the word sets the tail walks through, in order (the service uses at most 10
/// query words).
const TAIL_SET_SIZES: std::ops::RangeInclusive<usize> = 3..=10;

/// A product of the catalog sample, as far as search cares.
#[derive(Debug, Clone)]
pub struct Named {
    pub name: String,
    pub brand: String,
}

/// One query to send, and whether it carries a typo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub text: String,
    pub typo: bool,
}

/// The words a shopper would type from `text`: lowercase, letters only, two or more of them,
/// no stopwords. Tokens with digits (model numbers such as `K42`) are left out; hyphens and
/// punctuation separate words.
pub fn words(text: &str) -> Vec<String> {
    text.split(|character: char| !character.is_alphanumeric())
        .filter(|token| token.chars().count() >= 2 && token.chars().all(char::is_alphabetic))
        .map(str::to_lowercase)
        .filter(|word| !STOPWORDS.contains(&word.as_str()))
        .collect()
}

/// The ranked vocabulary: distinct queries of 1–3 words, most products first.
///
/// Candidates per product: runs of 1–3 adjacent words of its name ("wireless headphones"),
/// its brand (up to 2 words) and the brand followed by one word of the name ("acme kettle").
/// A query counts each product once; ties go to fewer words, then alphabetical order, so the
/// ranking is the same for the same sample.
pub fn vocabulary(products: &[Named]) -> Vec<String> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for product in products {
        for candidate in candidates(product) {
            *counts.entry(candidate).or_default() += 1;
        }
    }
    let mut ranked: Vec<(String, usize)> = counts.into_iter().collect();
    ranked.sort_by(|(left, left_count), (right, right_count)| {
        right_count
            .cmp(left_count)
            .then_with(|| word_count(left).cmp(&word_count(right)))
            .then_with(|| left.cmp(right))
    });
    ranked.into_iter().map(|(query, _)| query).collect()
}

fn word_count(query: &str) -> usize {
    query.split(' ').count()
}

/// The distinct candidate queries of one product.
fn candidates(product: &Named) -> HashSet<String> {
    let name_words = words(&product.name);
    let brand_words = words(&product.brand);
    let mut out = HashSet::new();
    for length in 1..=3 {
        for run in name_words.windows(length) {
            let distinct: HashSet<&String> = run.iter().collect();
            if distinct.len() == run.len() {
                out.insert(run.join(" "));
            }
        }
    }
    if (1..=2).contains(&brand_words.len()) {
        let brand = brand_words.join(" ");
        for word in name_words.iter().filter(|word| !brand_words.contains(word)) {
            out.insert(format!("{brand} {word}"));
        }
        out.insert(brand);
    }
    out
}

/// Zipf-distributed ranks `0..len` (rank 0 the most frequent), exponent `s`: rank `r` is drawn
/// `(r + 1)^-s` as often as rank 0.
#[derive(Debug, Clone, Copy)]
pub struct ZipfRanks {
    zipf: Zipf<f64>,
    len: usize,
}

impl ZipfRanks {
    /// Fails for an empty range or an exponent that is negative or not a number.
    pub fn new(len: usize, exponent: f64) -> anyhow::Result<Self> {
        anyhow::ensure!(len > 0, "nothing to draw from");
        anyhow::ensure!(
            exponent.is_finite() && exponent >= 0.0,
            "the Zipf exponent must be a number ≥ 0 (got {exponent})"
        );
        let zipf = Zipf::new(len as u64, exponent)
            .map_err(|error| anyhow::anyhow!("Zipf({len}, {exponent}): {error}"))?;
        Ok(ZipfRanks { zipf, len })
    }

    /// One rank.
    pub fn draw(&self, random: &mut impl Rng) -> usize {
        // The distribution yields 1..=len as a float.
        let rank = self.zipf.sample(random) as usize;
        rank.saturating_sub(1).min(self.len - 1)
    }
}

/// One realistic typo in `word`: two adjacent letters swapped (words of 5 letters or more) or
/// one letter dropped (words of 3 or more); never the first letter, which people rarely get
/// wrong. `None` for shorter words.
pub fn word_typo(word: &str, random: &mut impl Rng) -> Option<String> {
    let letters: Vec<char> = word.chars().collect();
    if letters.len() < 3 {
        return None;
    }
    // A swap of two equal letters changes nothing; a drop always does.
    for _ in 0..4 {
        if letters.len() >= 5 && random.gen_bool(0.5) {
            let at = random.gen_range(1..letters.len() - 1);
            if letters[at] != letters[at + 1] {
                return Some(swapped(&letters, at));
            }
        } else {
            return Some(dropped(&letters, random.gen_range(1..letters.len())));
        }
    }
    Some(dropped(&letters, letters.len() - 1))
}

fn swapped(letters: &[char], at: usize) -> String {
    let mut out = letters.to_vec();
    out.swap(at, at + 1);
    out.into_iter().collect()
}

fn dropped(letters: &[char], at: usize) -> String {
    letters
        .iter()
        .enumerate()
        .filter(|(index, _)| *index != at)
        .map(|(_, letter)| letter)
        .collect()
}

/// Every typo [`word_typo`] can make in `word`.
fn all_word_typos(word: &str) -> Vec<String> {
    let letters: Vec<char> = word.chars().collect();
    let mut out = Vec::new();
    if letters.len() < 3 {
        return out;
    }
    if letters.len() >= 5 {
        for at in 1..letters.len() - 1 {
            if letters[at] != letters[at + 1] {
                out.push(swapped(&letters, at));
            }
        }
    }
    for at in 1..letters.len() {
        out.push(dropped(&letters, at));
    }
    out.sort();
    out.dedup();
    out
}

/// `query` with one typo in one of its words (preferably one of 5 letters or more, where the
/// service's typo tolerance applies); `None` when no word has 3 letters.
pub fn query_typo(query: &str, random: &mut impl Rng) -> Option<String> {
    let mut query_words: Vec<String> = query.split(' ').map(str::to_owned).collect();
    let long: Vec<usize> = (0..query_words.len())
        .filter(|index| query_words[*index].chars().count() >= 5)
        .collect();
    let fallback: Vec<usize> = (0..query_words.len())
        .filter(|index| query_words[*index].chars().count() >= 3)
        .collect();
    let choices = if long.is_empty() { fallback } else { long };
    let at = *choices.choose(random)?;
    query_words[at] = word_typo(&query_words[at], random)?;
    Some(query_words.join(" "))
}

/// A shopper typing `query`: its earlier words whole, its last word cut at a random length of
/// 2 characters or more (a word shorter than that whole).
pub fn suggest_prefix(query: &str, random: &mut impl Rng) -> String {
    let (head, last) = match query.rsplit_once(' ') {
        Some((head, last)) => (Some(head), last),
        None => (None, query),
    };
    let letters: Vec<char> = last.chars().collect();
    let cut = if letters.len() > 2 {
        random.gen_range(2..=letters.len())
    } else {
        letters.len()
    };
    let typed: String = letters[..cut].iter().collect();
    match head {
        Some(head) => format!("{head} {typed}"),
        None => typed,
    }
}

/// The long tail: query number `n` is a word set no other number gets (see the module docs).
#[derive(Debug, Clone)]
pub struct TailQueries {
    words: Vec<String>,
    /// Per word: the typos that are not tail words and that no other tail word yields.
    typos: Vec<Vec<String>>,
    blocks: Vec<Block>,
    capacity: u128,
}

/// All sets of `set_size` words, visited in the order `index ↦ (index·multiplier + shift) mod
/// size` (a bijection, since the multiplier is coprime to the size), so that consecutive
/// queries do not share words; the shift rotates the order per run.
#[derive(Debug, Clone, Copy)]
struct Block {
    set_size: usize,
    size: u128,
    multiplier: u128,
    shift: u128,
}

impl TailQueries {
    /// The tail over the distinct words of `vocabulary` (its one-word queries), its order
    /// rotated by `rotation` (a random one per run, so that a run does not send the queries of
    /// the run before it). A word that is another word plus a final "s" is left out, so that a
    /// server that folds plurals still sees distinct queries. Fails with fewer than 3 words.
    pub fn new(vocabulary: &[String], rotation: u64) -> anyhow::Result<Self> {
        let single: HashSet<&str> = vocabulary
            .iter()
            .map(String::as_str)
            .filter(|query| !query.contains(' '))
            .collect();
        let mut tail_words: Vec<String> = single
            .iter()
            .filter(|word| {
                !word
                    .strip_suffix('s')
                    .is_some_and(|stem| single.contains(stem))
            })
            .map(|word| (*word).to_owned())
            .collect();
        tail_words.sort();
        anyhow::ensure!(
            tail_words.len() >= *TAIL_SET_SIZES.start(),
            "the catalog sample has {} distinct words; the long tail needs at least 3",
            tail_words.len()
        );
        let typos = unique_typos(&tail_words);
        let blocks = blocks(tail_words.len() as u128, rotation);
        let capacity = blocks.iter().map(|block| block.size).sum();
        Ok(TailQueries {
            words: tail_words,
            typos,
            blocks,
            capacity,
        })
    }

    /// How many queries come before the tail starts over.
    #[cfg(test)]
    pub fn capacity(&self) -> u128 {
        self.capacity
    }

    /// Query number `sequence` (modulo [`Self::capacity`]), its words in random order; with
    /// probability `typo_share` one word gets a typo (when one of them has a typo to give).
    pub fn query(&self, sequence: u64, typo_share: f64, random: &mut impl Rng) -> Query {
        let mut index = u128::from(sequence) % self.capacity.max(1);
        let mut chosen = Vec::new();
        for block in &self.blocks {
            if index < block.size {
                let permuted = (index * block.multiplier + block.shift) % block.size;
                chosen = unrank(permuted, block.set_size, self.words.len() as u128);
                break;
            }
            index -= block.size;
        }
        chosen.shuffle(random);
        let mut texts: Vec<String> = chosen.iter().map(|at| self.words[*at].clone()).collect();
        let mut typo = false;
        if random.gen_bool(typo_share) {
            let typeable: Vec<usize> = (0..chosen.len())
                .filter(|position| !self.typos[chosen[*position]].is_empty())
                .collect();
            if let Some(position) = typeable.choose(random) {
                if let Some(variant) = self.typos[chosen[*position]].choose(random) {
                    texts[*position] = variant.clone();
                    typo = true;
                }
            }
        }
        Query {
            text: texts.join(" "),
            typo,
        }
    }
}

/// Per word, its typos that are neither a word, nor a word plus "s", nor a typo of another word.
fn unique_typos(tail_words: &[String]) -> Vec<Vec<String>> {
    let known: HashSet<&str> = tail_words.iter().map(String::as_str).collect();
    let per_word: Vec<Vec<String>> = tail_words.iter().map(|word| all_word_typos(word)).collect();
    let mut yielded_by: HashMap<&str, usize> = HashMap::new();
    for variants in &per_word {
        for variant in variants {
            *yielded_by.entry(variant.as_str()).or_default() += 1;
        }
    }
    per_word
        .iter()
        .map(|variants| {
            variants
                .iter()
                .filter(|variant| {
                    !known.contains(variant.as_str())
                        && !variant
                            .strip_suffix('s')
                            .is_some_and(|stem| known.contains(stem))
                        && yielded_by.get(variant.as_str()) == Some(&1)
                })
                .cloned()
                .collect()
        })
        .collect()
}

/// The blocks of sets of 3, 4, … words out of `words`, as long as a block's size stays below
/// 2^63 (so `index · multiplier` fits in 128 bits), each rotated by `rotation`.
fn blocks(words: u128, rotation: u64) -> Vec<Block> {
    let mut out = Vec::new();
    for set_size in TAIL_SET_SIZES {
        let Some(size) = binomial(words, set_size as u128) else {
            break;
        };
        if size == 0 || size >= 1 << 63 {
            break;
        }
        // A multiplier near size / golden ratio spreads consecutive indices over the block.
        let mut multiplier = (size * 0x9E37_79B9) >> 32;
        multiplier = multiplier.max(1) % size;
        while gcd(multiplier, size) != 1 {
            multiplier = (multiplier + 1) % size;
        }
        out.push(Block {
            set_size,
            size,
            multiplier,
            shift: (size / 3 + u128::from(rotation)) % size,
        });
    }
    out
}

/// `n` choose `k`; `None` past 128 bits.
fn binomial(n: u128, k: u128) -> Option<u128> {
    if k > n {
        return Some(0);
    }
    let mut result: u128 = 1;
    for step in 0..k {
        result = result.checked_mul(n - step)? / (step + 1);
    }
    Some(result)
}

fn gcd(mut left: u128, mut right: u128) -> u128 {
    while right != 0 {
        (left, right) = (right, left % right);
    }
    left
}

/// The `rank`-th set of `set_size` distinct indices below `words` in the combinatorial number
/// system: `rank = C(x_k, k) + … + C(x_1, 1)` with `x_k > … > x_1`.
fn unrank(mut rank: u128, set_size: usize, words: u128) -> Vec<usize> {
    let mut out = Vec::with_capacity(set_size);
    let mut upper = words;
    for remaining in (1..=set_size as u128).rev() {
        // The largest x below `upper` with C(x, remaining) ≤ rank; C(remaining - 1, remaining)
        // is 0, so there is one.
        let (mut low, mut high) = (remaining - 1, upper - 1);
        while low < high {
            let middle = low + (high - low).div_ceil(2);
            match binomial(middle, remaining) {
                Some(count) if count <= rank => low = middle,
                _ => high = middle - 1,
            }
        }
        rank -= binomial(low, remaining).unwrap_or(0);
        out.push(low as usize);
        upper = low;
    }
    out
}

/// Everything the search mixes draw from, in one worker.
#[derive(Debug, Clone)]
pub struct Searches {
    vocabulary: Vec<String>,
    all: ZipfRanks,
    head: ZipfRanks,
    typo_share: f64,
    tail: Option<TailQueries>,
}

impl Searches {
    /// Zipf draws (exponent `zipf_s`) over `vocabulary` and over its top `head` queries, with
    /// `typo_share` of the `search` and `search-tail` queries getting a typo; the tail (rotated
    /// by `tail_rotation`) only when given one. Fails for an empty vocabulary or settings out
    /// of range.
    pub fn new(
        vocabulary: Vec<String>,
        zipf_s: f64,
        head: usize,
        typo_share: f64,
        tail_rotation: Option<u64>,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !vocabulary.is_empty(),
            "the catalog sample has no product names to search for"
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&typo_share),
            "--typo-share must be between 0 and 1 (got {typo_share})"
        );
        anyhow::ensure!(head > 0, "--head must be at least 1");
        let all = ZipfRanks::new(vocabulary.len(), zipf_s)?;
        let head = ZipfRanks::new(head.min(vocabulary.len()), zipf_s)?;
        let tail = match tail_rotation {
            Some(rotation) => Some(TailQueries::new(&vocabulary, rotation)?),
            None => None,
        };
        Ok(Searches {
            vocabulary,
            all,
            head,
            typo_share,
            tail,
        })
    }

    /// `--mix search`: a Zipf-drawn vocabulary query, `typo_share` of them with a typo.
    pub fn zipf(&self, random: &mut impl Rng) -> Query {
        let query = &self.vocabulary[self.all.draw(random)];
        if random.gen_bool(self.typo_share) {
            if let Some(text) = query_typo(query, random) {
                return Query { text, typo: true };
            }
        }
        Query {
            text: query.clone(),
            typo: false,
        }
    }

    /// `--mix search-head`: one of the top `head` queries, Zipf-drawn, as written (no typos,
    /// so at most `head` distinct texts).
    pub fn head(&self, random: &mut impl Rng) -> Query {
        Query {
            text: self.vocabulary[self.head.draw(random)].clone(),
            typo: false,
        }
    }

    /// `--mix search-tail`: query number `sequence` of the tail (an empty query when the tail
    /// was not built).
    pub fn tail(&self, sequence: u64, random: &mut impl Rng) -> Query {
        match &self.tail {
            Some(tail) => tail.query(sequence, self.typo_share, random),
            None => Query {
                text: String::new(),
                typo: false,
            },
        }
    }

    /// `--mix suggest`: what a shopper has typed of a Zipf-drawn vocabulary query.
    pub fn suggest(&self, random: &mut impl Rng) -> Query {
        let query = &self.vocabulary[self.all.draw(random)];
        Query {
            text: suggest_prefix(query, random),
            typo: false,
        }
    }
}

#[cfg(test)]
mod tests;
