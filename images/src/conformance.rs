//! The suite every [`crate::ImageStore`] adapter passes: `image_store_conformance!(async {
//! (store, guard) })` expands into one test per case; `guard` is kept alive for the test (a
//! temporary directory, a bucket).

use bytes::Bytes;

use crate::{page_name, ImageStore};

/// A fresh rendition name for one test.
pub fn fresh_name() -> String {
    page_name(&uuid::Uuid::new_v4().simple().to_string())
}

pub async fn what_is_put_is_got_back(store: &dyn ImageStore) {
    let name = fresh_name();
    let bytes = Bytes::from_static(b"\xff\xd8\xff pretend jpeg");
    store
        .put(&name, bytes.clone(), "image/jpeg")
        .await
        .expect("puts");
    assert_eq!(store.get(&name).await.expect("gets"), Some(bytes));
}

pub async fn a_name_never_put_is_none(store: &dyn ImageStore) {
    assert_eq!(store.get(&fresh_name()).await.expect("answers"), None);
}

pub async fn putting_the_same_name_again_is_harmless(store: &dyn ImageStore) {
    let name = fresh_name();
    let bytes = Bytes::from_static(b"same bytes");
    store
        .put(&name, bytes.clone(), "image/jpeg")
        .await
        .expect("puts");
    store
        .put(&name, bytes.clone(), "image/jpeg")
        .await
        .expect("puts again");
    assert_eq!(store.get(&name).await.expect("gets"), Some(bytes));
}

pub async fn the_url_ends_with_the_name_and_the_store_answers(store: &dyn ImageStore) {
    let name = fresh_name();
    assert!(store.url(&name).ends_with(&format!("/{name}")));
    store.check().await.expect("the store answers");
}

/// Expands into one `#[tokio::test]` per case of the suite; `$make` is an async block
/// answering `(store, guard)`.
#[macro_export]
macro_rules! image_store_conformance {
    ($make:expr) => {
        $crate::image_store_conformance!(@case $make, what_is_put_is_got_back);
        $crate::image_store_conformance!(@case $make, a_name_never_put_is_none);
        $crate::image_store_conformance!(@case $make, putting_the_same_name_again_is_harmless);
        $crate::image_store_conformance!(@case $make, the_url_ends_with_the_name_and_the_store_answers);
    };
    (@case $make:expr, $case:ident) => {
        #[tokio::test]
        async fn $case() {
            let (store, _guard) = $make.await;
            $crate::conformance::$case(&store).await;
        }
    };
}
