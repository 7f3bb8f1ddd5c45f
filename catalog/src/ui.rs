//! The catalog's own pages: the storefront at `/` (with the query role) and the admin console at
//! `/admin` (with the command role), from plain HTML, CSS and JavaScript files under `ui/`
//! compiled into the binary. They load nothing from another origin (no CDN, no web font), so
//! they work offline, and their Content-Security-Policy lets only this origin's scripts and
//! styles run; images may also come from the object store's public address (`CATALOG_IMAGES`).
//!
//! The pages are one shell each that routes on the path in the browser: `/c/{slug}`,
//! `/p/{id}` and `/search` answer the storefront's shell, `/admin/…` the console's, so a link
//! opened directly works. Their text is compressed (gzip) when the browser accepts it.

use std::sync::{Arc, LazyLock};

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use images::ImageStore;
use sha2::{Digest, Sha256};
use web::Problem;

/// One file of `ui/`.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! assets {
    ($($name:literal => $content_type:literal),* $(,)?) => {
        const ASSETS: &[Asset] = &[
            $(Asset { name: $name, content_type: $content_type, body: include_str!(concat!("ui/", $name)) },)*
        ];
    };
}

assets! {
    "storefront.html" => "text/html; charset=utf-8",
    "storefront.js" => "text/javascript; charset=utf-8",
    "storefront.css" => "text/css; charset=utf-8",
    "admin.html" => "text/html; charset=utf-8",
    "admin.js" => "text/javascript; charset=utf-8",
    "admin-core.js" => "text/javascript; charset=utf-8",
    "admin-products.js" => "text/javascript; charset=utf-8",
    "admin-editor.js" => "text/javascript; charset=utf-8",
    "admin-import.js" => "text/javascript; charset=utf-8",
    "admin-live.js" => "text/javascript; charset=utf-8",
    "admin.css" => "text/css; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
}

/// Each asset's ETag (in `ASSETS`' order), computed once: the bodies never change while the
/// binary runs.
static TAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            HeaderValue::from_str(&etag(asset.body)).unwrap_or(HeaderValue::from_static("\"\""))
        })
        .collect()
});

/// The asset named `name`, with its ETag.
fn find(name: &str) -> Option<(&'static Asset, &'static HeaderValue)> {
    let index = ASSETS.iter().position(|asset| asset.name == name)?;
    Some((&ASSETS[index], &TAGS[index]))
}

/// Which pages a process serves.
#[derive(Debug, Clone, Copy)]
pub struct Pages {
    pub storefront: bool,
    pub admin: bool,
}

/// The pages' Content-Security-Policy; `image_origin` is the object store's public origin
/// (`https://bucket.s3.…`) when images are served from there.
pub fn policy(image_origin: Option<&str>) -> String {
    let images = match image_origin {
        Some(origin) => format!("'self' data: {origin}"),
        None => "'self' data:".to_owned(),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src {images}; \
         connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
}

/// The routes of `pages` (none when neither is served), and `/images/` when `images` keeps
/// its files here.
pub fn routes(pages: Pages, images: Arc<dyn ImageStore>) -> Router {
    if !(pages.storefront || pages.admin) {
        return Router::new();
    }
    let policy = HeaderValue::from_str(&policy(images.foreign_origin().as_deref()))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"));
    let shell = |name: &'static str| {
        let policy = policy.clone();
        get(move |headers: HeaderMap| {
            let policy = policy.clone();
            async move { serve(name, &headers, &policy, "no-cache") }
        })
    };
    let mut router = Router::new();
    if pages.storefront {
        router = router
            .route("/", shell("storefront.html"))
            .route("/c/{slug}", shell("storefront.html"))
            .route("/p/{id}", shell("storefront.html"))
            .route("/search", shell("storefront.html"));
    }
    if pages.admin {
        router = router
            .route("/admin", shell("admin.html"))
            .route("/admin/{*rest}", shell("admin.html"));
    }
    let asset_policy = policy.clone();
    router
        .route(
            "/ui/{name}",
            get(move |Path(name): Path<String>, headers: HeaderMap| {
                let policy = asset_policy.clone();
                // Scripts and styles change with the binary: a browser revalidates them after
                // five minutes (a 304 when unchanged).
                async move { serve(&name, &headers, &policy, "public, max-age=300") }
            }),
        )
        .layer(tower_http::compression::CompressionLayer::new())
        .merge(image_routes(images))
}

/// `GET /images/{name}`: the renditions of uploaded images, when this process keeps them
/// itself (no `CATALOG_IMAGES`). Names are content-addressed, so the answer never changes:
/// cached for a year without revalidation.
fn image_routes(store: Arc<dyn ImageStore>) -> Router {
    if !store.served_here() {
        return Router::new();
    }
    Router::new().route(
        "/images/{name}",
        get(move |Path(name): Path<String>| {
            let store = store.clone();
            async move { image(store.as_ref(), &name).await }
        }),
    )
}

async fn image(store: &dyn ImageStore, name: &str) -> Response {
    if !images::is_rendition_name(name) {
        return Problem::not_found("no such image").into_response();
    }
    match store.get(name).await {
        Ok(Some(bytes)) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(images::RENDITION_CONTENT_TYPE),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ),
            ],
            bytes,
        )
            .into_response(),
        Ok(None) => Problem::not_found("no such image").into_response(),
        Err(error) => {
            tracing::warn!(%error, "image store unavailable");
            Problem::unavailable(1, "the image store is unavailable; retry shortly").into_response()
        }
    }
}

fn serve(name: &str, headers: &HeaderMap, policy: &HeaderValue, cache: &'static str) -> Response {
    let Some((asset, tag)) = find(name) else {
        return Problem::not_found("no such file of the catalog's pages").into_response();
    };
    let common = [
        (header::ETAG, tag.clone()),
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        (header::CONTENT_SECURITY_POLICY, policy.clone()),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
    ];
    let mut response = if headers.get(header::IF_NONE_MATCH) == Some(tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    response.headers_mut().extend(common);
    response
}

/// A strong validator of `body`: the first 16 hex digits of its SHA-256.
fn etag(body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    let hex: String = digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("\"{hex}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_links_only_files_this_module_serves() {
        for page in ["storefront.html", "admin.html"] {
            let body = find(page).map(|(asset, _)| asset.body).unwrap_or_default();
            for link in body.split("/ui/").skip(1) {
                let name: String = link
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                    .collect();
                assert!(
                    find(&name).is_some(),
                    "{page} links /ui/{name}, which is not served"
                );
            }
            for outside in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
                assert!(!body.contains(outside), "{page} links another origin");
            }
        }
    }

    /// The scripts are ES modules: every `import … from './x.js'` (and `import './x.js'`)
    /// must name a file of the table (the browser asks for `/ui/x.js`).
    #[test]
    fn every_script_imports_only_files_this_module_serves() {
        let mut imports = 0;
        for asset in ASSETS.iter().filter(|asset| asset.name.ends_with(".js")) {
            for quote in ['\'', '"'] {
                for lead in ["from ", "import "] {
                    let marker = format!("{lead}{quote}");
                    for rest in asset.body.split(marker.as_str()).skip(1) {
                        let target: String = rest.chars().take_while(|c| *c != quote).collect();
                        let name = target.strip_prefix("./").unwrap_or_default();
                        assert!(
                            name.ends_with(".js") && find(name).is_some(),
                            "{} imports {target}, which is not served",
                            asset.name
                        );
                        imports += 1;
                    }
                }
            }
        }
        assert!(imports > 0, "no import was found: the test reads nothing");
    }

    #[test]
    fn the_policy_allows_the_image_origin_and_nothing_inline() {
        let text = policy(Some("https://shop-images.s3.eu-west-1.amazonaws.com"));
        assert!(
            text.contains("img-src 'self' data: https://shop-images.s3.eu-west-1.amazonaws.com;")
        );
        assert!(text.contains("script-src 'self';"));
        assert!(!text.contains("unsafe-inline"));
    }
}
