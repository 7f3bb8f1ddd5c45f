//! Runs searches against an existing tantivy index directory and prints how long each took:
//! the harness for profiling one search (`valgrind --tool=callgrind`) and for timing it.
//!
//! `search_cost <index dir> <repeats> <query>...` (stop the catalog first: the index allows
//! one writer). Each query is run `repeats` times after one warm-up run.

use std::time::Instant;

use search::tantivy::TantivyIndex;
use search::{SearchIndex, SearchQuery};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let directory = args
        .next()
        .ok_or("usage: search_cost <index dir> <repeats> <query>...")?;
    let repeats: usize = args.next().ok_or("repeats missing")?.parse()?;
    let queries: Vec<String> = args.collect();
    let index = TantivyIndex::open(std::path::Path::new(&directory))?;
    for text in &queries {
        let query = SearchQuery::words(text);
        let warm = index.search(&query).await?;
        let started = Instant::now();
        for _ in 0..repeats {
            index.search(&query).await?;
        }
        let each = started.elapsed().as_secs_f64() * 1e3 / repeats.max(1) as f64;
        println!(
            "{text:?}: {} results, {each:.3} ms per search over {repeats}",
            warm.total
        );
    }
    Ok(())
}
