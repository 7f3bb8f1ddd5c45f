//! The storefront at `/` and the admin console at `/admin`: shells and assets compiled into
//! the binary, under a policy that runs only this origin's scripts and styles.

use catalog_tests::{assert_problem, send, spawn_app};

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn every_storefront_and_console_path_answers_its_page_under_a_strict_policy() {
    let app = spawn_app().await;
    for (path, script) in [
        ("/", "/ui/storefront.js"),
        ("/c/headphones", "/ui/storefront.js"),
        (
            "/p/0192f0c4-0000-7000-8000-000000000000",
            "/ui/storefront.js",
        ),
        ("/search?q=kettle", "/ui/storefront.js"),
        ("/admin", "/ui/admin.js"),
        (
            "/admin/products/0192f0c4-0000-7000-8000-000000000000",
            "/ui/admin.js",
        ),
    ] {
        let response = send(app.get(path)).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            header(&response, "content-type"),
            "text/html; charset=utf-8",
            "{path}"
        );
        let policy = header(&response, "content-security-policy");
        assert!(
            policy.contains("script-src 'self';") && !policy.contains("unsafe"),
            "{path}: {policy}"
        );
        let body = response.text().await.expect("body");
        assert!(body.contains(script), "{path} does not load {script}");
    }
}

#[tokio::test]
async fn assets_are_compressed_revalidated_and_unknown_ones_are_a_problem() {
    let app = spawn_app().await;
    let response = send(
        app.get("/ui/storefront.js")
            .header("accept-encoding", "gzip"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-encoding"), "gzip");
    assert!(header(&response, "content-type").starts_with("text/javascript"));
    let tag = header(&response, "etag");
    assert!(tag.starts_with('"'), "an ETag: {tag:?}");
    let again = send(app.get("/ui/storefront.js").header("if-none-match", &tag)).await;
    assert_eq!(again.status(), 304);
    for name in [
        "admin.js",
        "admin-core.js",
        "admin-products.js",
        "admin-editor.js",
        "admin-import.js",
        "admin-live.js",
        "admin.css",
        "storefront.css",
        "favicon.svg",
    ] {
        assert_eq!(
            send(app.get(&format!("/ui/{name}"))).await.status(),
            200,
            "{name}"
        );
    }
    assert_problem(send(app.get("/ui/../Cargo.toml")).await, 404).await;
    assert_problem(send(app.get("/ui/secret.env")).await, 404).await;
    assert_problem(send(app.get("/images/not-an-image.jpg")).await, 404).await;
}
