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
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// A sample shaped like the demo data: "{brand} {adjective} {noun} {model}".
    fn demo_like_sample(products: usize) -> Vec<Named> {
        const BRANDS: &[&str] = &[
            "Acme",
            "Voltix",
            "Sonora",
            "Lumen",
            "Bassline",
            "Auralis",
            "Nimbus",
            "Quanta",
            "Cucina",
            "Brewmaster",
            "Hearth",
            "Zesta",
            "Casa Bella",
            "Loft & Co",
            "Terra",
            "Summit",
            "Northwind",
            "Inkwell Press",
        ];
        const ADJECTIVES: &[&str] = &[
            "Classic",
            "Compact",
            "Deluxe",
            "Essential",
            "Premium",
            "Pro",
            "Ultra",
            "Smart",
            "Eco",
            "Lightweight",
            "Heavy-Duty",
            "Wireless",
            "Portable",
            "Modern",
            "Vintage",
            "Ergonomic",
        ];
        const NOUNS: &[&str] = &[
            "Charger",
            "Power Bank",
            "Smart Speaker",
            "Webcam",
            "USB Hub",
            "Headphones",
            "Earbuds",
            "Headset",
            "Laptop",
            "Notebook",
            "Kettle",
            "Coffee Grinder",
            "Toaster",
            "Blender",
            "Lamp",
            "Lamps",
            "Armchair",
            "Tent",
            "Sleeping Bag",
            "Backpack",
            "Novel",
            "Field Guide",
            "Atlas",
            "Face Cream",
            "Shampoo",
            "Hair Dryer",
            "Perfume",
        ];
        let mut random = StdRng::seed_from_u64(1);
        (0..products)
            .map(|index| {
                let brand = BRANDS[random.gen_range(0..BRANDS.len())];
                let adjective = ADJECTIVES[random.gen_range(0..ADJECTIVES.len())];
                let noun = NOUNS[random.gen_range(0..NOUNS.len())];
                Named {
                    name: format!("{brand} {adjective} {noun} X{index}"),
                    brand: brand.to_owned(),
                }
            })
            .collect()
    }

    fn normalised(text: &str) -> Vec<String> {
        let mut out: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
        out.sort();
        out.dedup();
        out
    }

    /// Whether `typed` is `original` with two adjacent letters swapped or one letter dropped.
    fn is_one_typo_of(typed: &str, original: &str) -> bool {
        all_word_typos(original)
            .iter()
            .any(|variant| variant == typed)
    }

    #[test]
    fn the_vocabulary_ranks_distinct_queries_of_one_to_three_words_from_names_and_brands() {
        let vocabulary = vocabulary(&demo_like_sample(2_000));
        let distinct: HashSet<&String> = vocabulary.iter().collect();
        assert_eq!(distinct.len(), vocabulary.len(), "no query twice");
        assert!(vocabulary
            .iter()
            .all(|query| (1..=3).contains(&word_count(query))));
        assert!(vocabulary
            .iter()
            .all(|query| query == &query.to_lowercase()));
        assert!(
            !vocabulary.iter().any(|query| query.contains("x1")),
            "no model numbers"
        );
        for expected in [
            "kettle",
            "wireless headphones",
            "acme kettle",
            "heavy duty",
            "casa bella",
        ] {
            assert!(
                vocabulary.contains(&expected.to_owned()),
                "{expected} is a query"
            );
        }
        // A word is in at least as many names as any query that contains it.
        let position = |query: &str| vocabulary.iter().position(|item| item == query);
        assert!(position("kettle").expect("kettle") < position("acme kettle").expect("pair"));
    }

    #[test]
    fn the_zipf_draw_favours_rank_one_over_rank_one_hundred_by_about_100_to_the_exponent() {
        for exponent in [0.5, 1.0] {
            let ranks = ZipfRanks::new(1_000, exponent).expect("ranks");
            let mut random = StdRng::seed_from_u64(11);
            let mut counts = vec![0u64; 1_000];
            for _ in 0..1_000_000 {
                counts[ranks.draw(&mut random)] += 1;
            }
            let ratio = counts[0] as f64 / counts[99] as f64;
            let expected = 100f64.powf(exponent);
            assert!(
                (ratio / expected - 1.0).abs() < 0.15,
                "exponent {exponent}: rank 1 drawn {ratio:.1}× as often as rank 100, expected about {expected:.1}×"
            );
        }
    }

    #[test]
    fn a_zipf_exponent_that_is_negative_or_not_a_number_is_refused() {
        assert!(ZipfRanks::new(10, -0.1).is_err());
        assert!(ZipfRanks::new(10, f64::NAN).is_err());
        assert!(ZipfRanks::new(0, 1.0).is_err());
    }

    #[test]
    fn tail_queries_never_repeat_over_100_000_draws_spread_over_workers() {
        let vocabulary = vocabulary(&demo_like_sample(2_000));
        let tail = TailQueries::new(&vocabulary, 12_345).expect("tail");
        let mut random = StdRng::seed_from_u64(3);
        let mut seen = HashSet::new();
        let mut typos = 0;
        let workers = 3u64;
        for counter in 0..100_000 / workers + 1 {
            for worker in 0..workers {
                let query = tail.query(counter * workers + worker, 0.2, &mut random);
                typos += u64::from(query.typo);
                assert!(
                    seen.insert(normalised(&query.text)),
                    "{:?} was sent before",
                    query.text
                );
            }
        }
        assert!(seen.len() >= 100_000);
        let share = typos as f64 / seen.len() as f64;
        assert!((0.17..0.23).contains(&share), "typo share {share}");
    }

    #[test]
    fn a_tail_over_few_words_moves_on_to_longer_queries_without_repeating() {
        let few: Vec<String> = [
            "kettle", "lamp", "tent", "atlas", "novel", "toaster", "blender",
        ]
        .iter()
        .chain(
            [
                "webcam", "headset", "charger", "laptop", "perfume", "shampoo",
            ]
            .iter(),
        )
        .map(|word| (*word).to_owned())
        .collect();
        let tail = TailQueries::new(&few, 0).expect("tail");
        // 13 words: the sets of 3 to 10 of them, 286 + 715 + … + 286.
        let capacity = tail.capacity();
        assert_eq!(capacity, 8_008);
        let mut random = StdRng::seed_from_u64(5);
        let mut seen = HashSet::new();
        for sequence in 0..capacity as u64 {
            let query = tail.query(sequence, 0.5, &mut random);
            assert!(
                seen.insert(normalised(&query.text)),
                "{:?} repeats",
                query.text
            );
            assert!((3..=10).contains(&query.text.split(' ').count()));
        }
    }

    #[test]
    fn the_typo_share_of_the_search_mix_is_about_as_set_and_each_typo_is_one_edit() {
        let vocabulary = vocabulary(&demo_like_sample(2_000));
        let known: HashSet<&str> = vocabulary.iter().map(String::as_str).collect();
        // Which words a typed word can be a typo of.
        let mut typo_of: HashMap<String, Vec<&str>> = HashMap::new();
        for word in vocabulary.iter().filter(|query| !query.contains(' ')) {
            for variant in all_word_typos(word) {
                typo_of.entry(variant).or_default().push(word);
            }
        }
        let one_typo_from_the_vocabulary = |typed: &str| {
            let typed_words: Vec<&str> = typed.split(' ').collect();
            (0..typed_words.len()).any(|position| {
                typo_of
                    .get(typed_words[position])
                    .into_iter()
                    .flatten()
                    .any(|original| {
                        let mut repaired = typed_words.clone();
                        repaired[position] = original;
                        known.contains(repaired.join(" ").as_str())
                    })
            })
        };
        for share in [0.0, 0.2, 0.5] {
            let searches =
                Searches::new(vocabulary.clone(), 1.0, 100, share, None).expect("searches");
            let mut random = StdRng::seed_from_u64(9);
            let draws = 50_000;
            let mut typos = 0;
            for _ in 0..draws {
                let query = searches.zipf(&mut random);
                if query.typo {
                    typos += 1;
                    assert!(
                        one_typo_from_the_vocabulary(&query.text),
                        "{:?} is a vocabulary query with one typo",
                        query.text
                    );
                } else {
                    assert!(known.contains(query.text.as_str()), "{:?}", query.text);
                }
            }
            let measured = typos as f64 / draws as f64;
            assert!(
                (measured - share).abs() < 0.02,
                "typo share {measured}, set {share}"
            );
        }
    }

    #[test]
    fn word_typos_swap_two_adjacent_letters_or_drop_one_but_never_touch_the_first() {
        let mut random = StdRng::seed_from_u64(2);
        let mut swaps = 0;
        let mut drops = 0;
        for _ in 0..1_000 {
            let typed = word_typo("kettle", &mut random).expect("a typo");
            assert!(is_one_typo_of(&typed, "kettle"), "{typed}");
            assert!(typed.starts_with('k'));
            if typed.chars().count() == 6 {
                swaps += 1;
            } else {
                drops += 1;
            }
        }
        assert!(swaps > 300 && drops > 300, "swaps {swaps}, drops {drops}");
        assert_eq!(word_typo("tv", &mut random), None);
        let short = word_typo("oak", &mut random).expect("a drop");
        assert!(["ok", "oa"].contains(&short.as_str()));
    }

    #[test]
    fn suggest_prefixes_are_prefixes_of_vocabulary_queries_cut_in_their_last_word() {
        let vocabulary = vocabulary(&demo_like_sample(2_000));
        let searches = Searches::new(vocabulary.clone(), 1.0, 100, 0.2, None).expect("searches");
        let mut random = StdRng::seed_from_u64(4);
        let mut distinct = HashSet::new();
        for _ in 0..10_000 {
            let prefix = searches.suggest(&mut random).text;
            assert!(
                vocabulary.iter().any(|query| query.starts_with(&prefix)),
                "{prefix:?} begins a vocabulary query"
            );
            let last = prefix.rsplit(' ').next().expect("a last word");
            assert!(
                last.chars().count() >= 2,
                "{prefix:?}: at least 2 typed letters"
            );
            distinct.insert(prefix);
        }
        assert!(distinct.len() > 100, "shoppers stop at different letters");
    }

    #[test]
    fn head_queries_come_only_from_the_top_of_the_vocabulary() {
        let vocabulary = vocabulary(&demo_like_sample(2_000));
        let searches = Searches::new(vocabulary.clone(), 1.0, 100, 0.2, None).expect("searches");
        let top: HashSet<&String> = vocabulary.iter().take(100).collect();
        let mut random = StdRng::seed_from_u64(6);
        let mut seen = HashSet::new();
        for _ in 0..20_000 {
            let query = searches.head(&mut random);
            assert!(
                top.contains(&query.text),
                "{:?} is in the top 100",
                query.text
            );
            seen.insert(query.text);
        }
        assert!(seen.len() > 50, "the head is not one query");
    }

    #[test]
    fn settings_out_of_range_are_refused() {
        let vocabulary = vec!["kettle".to_owned()];
        assert!(Searches::new(vocabulary.clone(), 1.0, 100, 1.5, None).is_err());
        assert!(Searches::new(vocabulary.clone(), 1.0, 0, 0.2, None).is_err());
        assert!(Searches::new(Vec::new(), 1.0, 100, 0.2, None).is_err());
        assert!(
            Searches::new(vocabulary, 1.0, 100, 0.2, Some(0)).is_err(),
            "one word, no tail"
        );
    }
}
