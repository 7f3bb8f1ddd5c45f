//! `S3ImageStore` against a real S3 API: moto's (the test script installs `moto_server`;
//! `CATALOG_TEST_SQS_ENDPOINT` names a running one, else one is started), a bucket per test.

use images::{ImageStore, ImagesConfig, S3ImageStore};

async fn store() -> (S3ImageStore, ()) {
    let endpoint = testkit::moto_endpoint();
    let bucket = format!("catalog-images-{}", uuid::Uuid::new_v4().simple());
    let config = ImagesConfig::from_url(&format!("s3://{bucket}?endpoint=http://{endpoint}"))
        .expect("a valid CATALOG_IMAGES");
    let store = S3ImageStore::connect(config).await;
    store.create_public_bucket().await.unwrap_or_else(|error| {
        panic!("moto_server at {endpoint} refused to create a bucket ({error}); start it with `moto_server -H 127.0.0.1 -p 5999` and set CATALOG_TEST_SQS_ENDPOINT=127.0.0.1:5999")
    });
    (store, ())
}

images::image_store_conformance!(store());

#[tokio::test]
async fn an_object_is_served_from_its_url_with_its_type_and_an_immutable_cache_lifetime() {
    let (store, ()) = store().await;
    let name = images::conformance::fresh_name();
    store
        .put(
            &name,
            bytes::Bytes::from_static(b"jpeg bytes"),
            "image/jpeg",
        )
        .await
        .expect("puts");
    let url = store.url(&name);
    let answer = reqwest::get(&url).await.expect("the object's URL answers");
    assert_eq!(answer.status(), 200, "{url}");
    let header = |name: &str| {
        answer
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("content-type"), "image/jpeg");
    assert_eq!(header("cache-control"), images::s3::IMMUTABLE);
    assert_eq!(answer.bytes().await.expect("body").as_ref(), b"jpeg bytes");
}

#[tokio::test]
async fn a_missing_bucket_fails_the_readiness_check_with_its_name() {
    let endpoint = testkit::moto_endpoint();
    let config = ImagesConfig::from_url(&format!(
        "s3://no-such-bucket-here?endpoint=http://{endpoint}"
    ))
    .expect("valid");
    let error = S3ImageStore::connect(config)
        .await
        .check()
        .await
        .expect_err("no bucket");
    assert!(error.to_string().contains("no-such-bucket-here"), "{error}");
}
