//! An index with nothing to do costs no CPU (its own test binary, so no other index's writer
//! thread is busy meanwhile).

use std::time::Duration;

use search::tantivy::TantivyIndex;
use search::{SearchIndex, SearchWriter};

/// CPU time (user + system, in clock ticks) of this process's `search-writer` threads.
fn writer_ticks() -> u64 {
    let mut ticks = 0;
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let path = task.expect("task").path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if name.trim() != "search-writer" {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        // Fields after the parenthesised name: state is field 3; utime and stime are 14, 15.
        let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
        let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
        ticks += utime + stime;
    }
    ticks
}

#[tokio::test]
async fn an_idle_index_writer_sleeps_instead_of_spinning() {
    let directory = tempfile::tempdir().expect("dir");
    let index = TantivyIndex::open(directory.path()).expect("open");
    let product =
        search::conformance::product("KITC-1", "Electric Kettle", "Acme", "kitchen", 100, 1, 0);
    index.put(product, 3).await.expect("put");
    assert!(index.wait_for(3, Duration::from_secs(2)).await);
    // Past the commit interval, with nothing more to write.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = writer_ticks();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let spent = writer_ticks() - before;
    // A spinning writer burns ~200 ticks (2 s of one core at 100 Hz); an idle one ~0.
    assert!(
        spent < 20,
        "the idle search writer used {spent} clock ticks of CPU in 2 s"
    );
    // It still wakes for new work.
    let product =
        search::conformance::product("KITC-2", "Stove Kettle", "Acme", "kitchen", 100, 1, 0);
    index.put(product, 4).await.expect("put");
    assert!(index.wait_for(4, Duration::from_secs(2)).await);
}
