//! The tantivy adapter against the search port's suite, each case in an index of its own.

use std::sync::Arc;

use search::tantivy_index::TantivyIndex;

#[tokio::test]
async fn the_tantivy_index_passes_the_search_suite() {
    let directories = std::sync::Mutex::new(Vec::new());
    search::conformance::run(|| async {
        let directory = tempfile::tempdir().expect("dir");
        let index = TantivyIndex::open(directory.path()).expect("open");
        directories.lock().expect("lock").push(directory);
        (
            index.clone() as Arc<dyn search::SearchIndex>,
            index as Arc<dyn search::SearchWriter>,
        )
    })
    .await;
}

#[tokio::test]
async fn a_reopened_index_keeps_its_documents_and_checkpoint() {
    use search::{SearchIndex, SearchQuery, SearchWriter};
    let directory = tempfile::tempdir().expect("dir");
    {
        let index = TantivyIndex::open(directory.path()).expect("open");
        let product =
            search::conformance::product("KITC-1", "Electric Kettle", "Acme", "kitchen", 100, 1, 0);
        index.put(product, 7).await.expect("put");
        assert!(index.wait_for(7, std::time::Duration::from_secs(1)).await);
    }
    // The writer thread lets go of the directory shortly after the index is dropped.
    let reopened = {
        let mut attempts = 0;
        loop {
            match TantivyIndex::open(directory.path()) {
                Ok(index) => break index,
                Err(error) if attempts < 50 => {
                    attempts += 1;
                    let _ = error;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(error) => panic!("reopen: {error}"),
            }
        }
    };
    assert_eq!(reopened.checkpoint().await.expect("checkpoint"), 7);
    let results = reopened
        .search(&SearchQuery::words("kettle"))
        .await
        .expect("search");
    assert_eq!(results.total, 1);
}
