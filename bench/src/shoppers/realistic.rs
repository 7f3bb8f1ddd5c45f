//! `--mix realistic`: what a storefront's shoppers ask for, in proportion, each request of a
//! kind the report measures on its own.
//!
//! | kind | share | what |
//! | --- | ---: | --- |
//! | `product` | 35 % | a product page, the product Zipf-drawn over the sample (`--zipf-s`): bestsellers are viewed most |
//! | `listing` | 20 % | a category's first page, a random sort |
//! | `filtered` | 10 % | a category filtered by a brand, a price band or in stock (one to three of them), a random sort |
//! | `categories` | 5 % | the category list |
//! | `bestsellers` | 5 % | the top 10, overall or in a category |
//! | `search` | 15 % | a vocabulary query Zipf-drawn, `--typo-share` of them with a typo |
//! | `suggest` | 10 % | what a shopper has typed of a Zipf-drawn query (2+ letters of its last word) |
//!
//! With `--writes-per-second`, a write stream runs beside it through the command API
//! (`writes.rs`), so the caches are invalidated while they serve.

use rand::Rng;

use super::queries::{Query, Searches, ZipfRanks};
use super::Args;

/// The kinds of request, in report order.
pub const KINDS: [&str; 7] = [
    "product",
    "listing",
    "filtered",
    "categories",
    "bestsellers",
    "search",
    "suggest",
];

/// The draws of the realistic mix.
pub struct Realistic {
    products: ZipfRanks,
}

impl Realistic {
    pub fn new(args: &Args) -> anyhow::Result<Self> {
        Ok(Realistic {
            products: ZipfRanks::new(args.products.len().max(1), args.zipf_s)?,
        })
    }

    /// The next request: its kind (an index of [`KINDS`]), path and search query.
    pub fn next(
        &self,
        args: &Args,
        searches: &Searches,
        random: &mut impl Rng,
    ) -> (usize, String, Option<Query>) {
        let roll = random.gen_range(0..100);
        let pick = |items: &[String], random: &mut dyn rand::RngCore| {
            items
                .get(random.gen_range(0..items.len().max(1)))
                .cloned()
                .unwrap_or_default()
        };
        let sort = |random: &mut dyn rand::RngCore| {
            ["newest", "price_asc", "price_desc", "bestselling", "name"][random.gen_range(0..5)]
        };
        match roll {
            0..=34 => {
                let id = args
                    .products
                    .get(self.products.draw(random))
                    .cloned()
                    .unwrap_or_default();
                (0, format!("/api/products/{id}"), None)
            }
            35..=54 => {
                let category = pick(&args.categories, random);
                let sort = sort(random);
                (
                    1,
                    format!("/api/products?category={category}&sort={sort}&limit=20"),
                    None,
                )
            }
            55..=64 => {
                let category = pick(&args.categories, random);
                let mut path = format!(
                    "/api/products?category={category}&sort={}&limit=20",
                    sort(random)
                );
                let filters = random.gen_range(1..=7u8);
                if filters & 1 != 0 && !args.brands.is_empty() {
                    path.push_str("&brand=");
                    path.push_str(&super::worker::encode(&pick(&args.brands, random)));
                }
                if filters & 2 != 0 {
                    let low = random.gen_range(0..8) * 2_500;
                    path.push_str(&format!("&min_price={low}&max_price={}", low + 5_000));
                }
                if filters & 4 != 0 {
                    path.push_str("&in_stock=true");
                }
                (2, path, None)
            }
            65..=69 => (3, "/api/categories".to_owned(), None),
            70..=74 => {
                let path = if random.gen_bool(0.5) {
                    "/api/products/bestsellers?limit=10".to_owned()
                } else {
                    format!(
                        "/api/products/bestsellers?limit=10&category={}",
                        pick(&args.categories, random)
                    )
                };
                (4, path, None)
            }
            75..=89 => {
                let query = searches.zipf(random);
                let path = format!("/api/search?q={}", super::worker::encode(&query.text));
                (5, path, Some(query))
            }
            _ => {
                let query = searches.suggest(random);
                let path = format!(
                    "/api/search/suggest?q={}",
                    super::worker::encode(&query.text)
                );
                (6, path, Some(query))
            }
        }
    }
}

/// Each kind's requests/s, latency percentiles and errors, one line each.
pub fn kind_table(kinds: &[(hdrhistogram::Histogram<u64>, u64)], seconds: u64) -> String {
    let mut out = format!(
        "{:<12} {:>9} {:>8} {:>8} {:>8} {:>9} {:>7}\n",
        "kind", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "errors"
    );
    for (name, (latencies, errors)) in KINDS.iter().zip(kinds) {
        let ms = |quantile: f64| latencies.value_at_quantile(quantile) as f64 / 1000.0;
        out.push_str(&format!(
            "{:<12} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>7}\n",
            name,
            latencies.len() as f64 / seconds.max(1) as f64,
            ms(0.5),
            ms(0.9),
            ms(0.99),
            ms(0.999),
            errors
        ));
    }
    out
}
