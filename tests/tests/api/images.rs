//! The Images section of API.md: uploads through the command API, stored under the data dir
//! (served at `/images/…`) or in an S3 bucket (moto's), listed in the product's `images`.

use catalog_tests::{
    assert_problem, json_body, send, spawn_app_with, spawn_app_with_product, TestApp,
};
use image::{ImageEncoder, Rgb, RgbImage};
use reqwest::Method;
use serde_json::{json, Value};

/// A `width` x `height` PNG of a gradient.
fn png(width: u32, height: u32) -> Vec<u8> {
    let picture = RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, 140])
    });
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(
            picture.as_raw(),
            width,
            height,
            image::ExtendedColorType::Rgb8,
        )
        .expect("encodes");
    out
}

async fn upload(app: &TestApp, id: &str, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    app.admin_raw(
        Method::POST,
        &format!("/api/products/{id}/images"),
        content_type,
        body,
    )
    .await
}

async fn product_images(app: &TestApp, id: &str, position: u64) -> Vec<String> {
    let product = app
        .read_json_after(&format!("/api/products/{id}"), position)
        .await;
    serde_json::from_value(product["images"].clone()).expect("images is a list of URLs")
}

/// Uploads a 1600 x 1000 PNG to the product and checks what the answer and the product say;
/// returns the answer.
async fn upload_and_check(app: &TestApp, id: &str) -> Value {
    let response = upload(app, id, "image/png", png(1600, 1000)).await;
    assert_eq!(response.status(), 201);
    let answer = json_body(response).await;
    let image = &answer["image"];
    assert_eq!(
        (image["width"].as_u64(), image["height"].as_u64()),
        (Some(1200), Some(750))
    );
    let url = image["url"].as_str().expect("url");
    assert!(
        url.ends_with(".page.jpg")
            && image["thumbnail_url"]
                .as_str()
                .is_some_and(|t| t.ends_with(".thumb.jpg"))
    );
    assert_eq!(answer["version"], 2);
    let position = answer["position"].as_u64().expect("position");
    assert_eq!(
        product_images(app, id, position).await,
        vec![url.to_owned()]
    );
    answer
}

async fn assert_is_jpeg(response: reqwest::Response, width: u32) {
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("content-type"), "image/jpeg");
    assert!(
        header("cache-control").contains("immutable"),
        "{}",
        header("cache-control")
    );
    let bytes = response.bytes().await.expect("body");
    let decoded = image::load_from_memory(&bytes).expect("a JPEG that decodes");
    assert_eq!(decoded.width(), width);
}

#[tokio::test]
async fn an_uploaded_image_is_served_from_the_data_dir_in_two_sizes_and_can_be_removed() {
    let (app, id) = spawn_app_with_product(json!({"images": []})).await;
    let answer = upload_and_check(&app, &id).await;
    let image = &answer["image"];
    let url = image["url"].as_str().expect("url");
    assert!(url.starts_with("/images/"), "{url}");
    assert_is_jpeg(send(app.get(url)).await, 1200).await;
    assert_is_jpeg(
        send(app.get(image["thumbnail_url"].as_str().expect("thumbnail"))).await,
        320,
    )
    .await;
    // The same picture again is a conflict, not a second copy.
    assert_problem(upload(&app, &id, "image/png", png(1600, 1000)).await, 409).await;
    let image_id = image["id"].as_str().expect("id");
    let removed = app
        .admin_send(
            Method::DELETE,
            &format!("/api/products/{id}/images/{image_id}"),
        )
        .await;
    assert_eq!(removed.status(), 204);
    let position = catalog_tests::position_header(&removed);
    assert!(product_images(&app, &id, position).await.is_empty());
    let again = app
        .admin_send(
            Method::DELETE,
            &format!("/api/products/{id}/images/{image_id}"),
        )
        .await;
    assert_problem(again, 404).await;
}

#[tokio::test]
async fn uploads_are_checked_by_their_bytes_size_and_caller() {
    let (app, id) = spawn_app_with_product(json!({"images": []})).await;
    let path = format!("/api/products/{id}/images");
    // Not an image, whatever the header says; an image format that is not accepted.
    assert_problem(
        upload(&app, &id, "image/png", b"hello, not a picture".to_vec()).await,
        415,
    )
    .await;
    assert_problem(
        upload(
            &app,
            &id,
            "image/jpeg",
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00".to_vec(),
        )
        .await,
        415,
    )
    .await;
    // A picture declared as something else is refused before it is read.
    assert_problem(upload(&app, &id, "text/plain", png(10, 10)).await, 415).await;
    // Broken image data.
    let mut truncated = png(64, 64);
    truncated.truncate(80);
    assert_problem(upload(&app, &id, "image/png", truncated).await, 422).await;
    // Over 10 MiB.
    assert_problem(
        upload(&app, &id, "image/png", vec![0u8; 10 * 1024 * 1024 + 1]).await,
        413,
    )
    .await;
    // No token, unknown product.
    let anonymous = send(
        app.request(Method::POST, &path)
            .header("content-type", "image/png")
            .body(png(10, 10)),
    )
    .await;
    assert_problem(anonymous, 401).await;
    let unknown = upload(
        &app,
        "0192f0c4-0000-7000-8000-000000000000",
        "image/png",
        png(10, 10),
    )
    .await;
    assert_problem(unknown, 404).await;
    // A stale If-Match.
    let stale = send(
        app.admin(Method::POST, &path)
            .header("content-type", "image/png")
            .header("if-match", "\"7\"")
            .body(png(10, 10)),
    )
    .await;
    assert_problem(stale, 412).await;
    // The product is unchanged by all of it.
    let product = app.fetch_json(&format!("/api/products/{id}")).await;
    assert_eq!(
        (
            product["version"].as_u64(),
            product["images"].as_array().map(Vec::len)
        ),
        (Some(1), Some(0))
    );
}

#[tokio::test]
async fn with_catalog_images_set_the_renditions_go_to_the_bucket_and_load_from_there() {
    let endpoint = testkit::moto_endpoint();
    let bucket = format!("catalog-images-{}", uuid::Uuid::new_v4().simple());
    let url = format!("s3://{bucket}?endpoint=http://{endpoint}");
    let store =
        images::S3ImageStore::connect(images::ImagesConfig::from_url(&url).expect("valid")).await;
    store.create_public_bucket().await.unwrap_or_else(|error| {
        panic!("moto_server at {endpoint} refused a bucket ({error}); start it with `moto_server -H 127.0.0.1 -p 5999` and set CATALOG_TEST_SQS_ENDPOINT=127.0.0.1:5999")
    });
    let app = spawn_app_with(|config| config.engines.images_url = Some(url)).await;
    app.create_category("electronics").await;
    let id = app.create_product(json!({"images": []})).await.id;
    let answer = upload_and_check(&app, &id).await;
    let page = answer["image"]["url"].as_str().expect("url");
    assert!(
        page.starts_with(&format!("http://{endpoint}/{bucket}/")),
        "{page}"
    );
    assert_is_jpeg(send(reqwest::Client::new().get(page)).await, 1200).await;
    // This process does not serve the bucket's files itself.
    let name = page.rsplit('/').next().unwrap_or_default();
    assert_eq!(
        send(app.get(&format!("/images/{name}"))).await.status(),
        404
    );
    // The storefront's policy lets the bucket's images load.
    let storefront = send(app.get("/")).await;
    let policy = storefront
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        policy.contains(&format!("img-src 'self' data: http://{endpoint};")),
        "{policy}"
    );
}
