//! The tantivy adapter against the search port's suite, each case a test of its own in an
//! index of its own.

use std::sync::Arc;

use search::tantivy::TantivyIndex;

async fn tantivy_index() -> search::conformance::SearchFixture {
    let directory = tempfile::tempdir().expect("dir");
    let index = TantivyIndex::open(directory.path()).expect("open");
    search::conformance::SearchFixture {
        index: index.clone() as Arc<dyn search::SearchIndex>,
        writer: index as Arc<dyn search::SearchWriter>,
        keep: Box::new(directory),
    }
}

search::search_index_suite!(the_tantivy_index_passes, tantivy_index);

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
