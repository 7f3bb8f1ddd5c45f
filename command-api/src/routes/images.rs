//! `POST /api/products/{id}/images` and `DELETE /api/products/{id}/images/{image_id}`.
//!
//! An upload is the image's bytes as the body (`image/jpeg`, `image/png` or `image/webp`, at
//! most 10 MiB). The declared type only says the client meant an image: the format is sniffed
//! from the bytes ([`images::process`]). The renditions are written to the image store before
//! the `ImagesAdded` event is appended, so an event never names a file that is not there (a
//! crash in between leaves unreferenced files, which are harmless: names are content-addressed).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use images::{ImageError, ImageStoreError, Processed};
use web::extract::Path;
use web::Problem;

use super::schemas::{ImageAccepted, ImageOutput};
use super::{AdminCommand, X_POSITION};
use crate::commands::{AddImage, ProductCommand, RemoveImage};

pub use images::MAX_IMAGE_BYTES;

/// The media types an upload may declare.
const ACCEPTED_TYPES: [&str; 3] = ["image/jpeg", "image/png", "image/webp"];

fn image_problem(error: ImageError) -> Problem {
    match error {
        ImageError::TooLarge => Problem::payload_too_large(error.to_string()),
        ImageError::UnsupportedFormat => Problem::unsupported_media_type(error.to_string()),
        ImageError::TooManyPixels { .. } | ImageError::Undecodable(_) => {
            Problem::invalid_field("body", error.to_string())
        }
    }
}

fn store_problem(error: ImageStoreError) -> Problem {
    match error {
        ImageStoreError::Unavailable(message) => {
            tracing::warn!(error = %message, "image store unavailable");
            Problem::unavailable(1, "the image store is unavailable; retry shortly")
        }
        ImageStoreError::Unexpected(message) => Problem::internal_logged(&message),
    }
}

fn declared_type(admin: &AdminCommand) -> Result<(), Problem> {
    if ACCEPTED_TYPES.contains(&super::media_type(&admin.headers).as_str()) {
        Ok(())
    } else {
        Err(Problem::unsupported_media_type(
            "send the image itself as the body with Content-Type image/jpeg, image/png or image/webp",
        ))
    }
}

/// Upload an image of a product: stored as a page-size JPEG (at most 1200 pixels a side) and a
/// thumbnail (320), its metadata (EXIF) stripped; appends `ImagesAdded`.
#[utoipa::path(post, path = "/api/products/{id}/images", tag = "commands",
    request_body(content = Vec<u8>, description = "The image: JPEG, PNG or WebP (sniffed from the bytes), at most 10 MiB and 40 megapixels",
        content_type = "image/jpeg"),
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = "\"<version>\"; 412 when stale")),
    responses(
        (status = 201, description = "Stored; the product's `images` lists its URL", body = ImageAccepted, headers(("X-Position" = u64))),
        (status = 404, body = Problem),
        (status = 409, description = "The product has this image already, or 20 images", body = Problem),
        (status = 412, body = Problem), (status = 413, description = "Over 10 MiB", body = Problem),
        (status = 415, description = "Not a JPEG, PNG or WebP image", body = Problem),
        (status = 422, description = "The image cannot be decoded, or is over 40 megapixels", body = Problem),
        (status = 503, description = "Too many uploads being processed, or the image store is down", body = Problem),
    ),
    security(("bearer" = [])))]
pub async fn upload_image(
    admin: AdminCommand,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    // What `on_product` checks again, here before the costly part: a malformed id or
    // If-Match is a 400/404 without decoding anything.
    super::parse_product_id(&id)?;
    super::if_match(&admin.headers)?;
    declared_type(&admin)?;
    if body.is_empty() {
        return Err(Problem::invalid_field(
            "body",
            "is empty: send the image's bytes",
        ));
    }
    let uploads = admin.state.images.clone();
    let processed = uploads
        .gate
        .run(move || images::process(&body))
        .await
        .map_err(|_| Problem::unavailable(2, "too many images being processed; retry shortly"))?
        .map_err(image_problem)?;
    let image = store(uploads.store.as_ref(), &processed).await?;
    let accepted = admin
        .on_product(
            &id,
            Ok(ProductCommand::AddImage(AddImage {
                image: image.clone(),
            })),
        )
        .await?;
    let output = ImageAccepted {
        id: accepted.id,
        version: accepted.version,
        position: accepted.position,
        image: ImageOutput {
            id: image.id,
            url: image.url,
            thumbnail_url: image.thumbnail_url,
            width: image.width,
            height: image.height,
        },
    };
    Ok((
        StatusCode::CREATED,
        [(X_POSITION, accepted.position.to_string())],
        axum::Json(output),
    )
        .into_response())
}

/// Writes both renditions; the event's description of the image.
async fn store(
    store: &dyn images::ImageStore,
    processed: &Processed,
) -> Result<events::AddedImage, Problem> {
    let saved = images::save(store, processed)
        .await
        .map_err(store_problem)?;
    Ok(events::AddedImage {
        id: processed.id.clone(),
        url: saved.url,
        thumbnail_url: saved.thumbnail_url,
        width: processed.page.width,
        height: processed.page.height,
    })
}

/// Take an uploaded image off a product (`ImageRemoved`); its files stay in the store.
#[utoipa::path(delete, path = "/api/products/{id}/images/{image_id}", tag = "commands",
    params(("id" = uuid::Uuid, Path), ("image_id" = String, Path, description = "The image's id (32 hex digits)"),
        ("If-Match" = Option<String>, Header)),
    responses((status = 204, description = "Removed", headers(("X-Position" = u64))),
        (status = 404, description = "No such product, or no such image of it", body = Problem),
        (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn remove_image(
    admin: AdminCommand,
    Path((id, image_id)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let accepted = admin
        .on_product(
            &id,
            Ok(ProductCommand::RemoveImage(RemoveImage { image_id })),
        )
        .await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(X_POSITION, accepted.position.to_string())],
    )
        .into_response())
}
