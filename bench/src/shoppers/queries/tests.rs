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
        let searches = Searches::new(vocabulary.clone(), 1.0, 100, share, None).expect("searches");
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
