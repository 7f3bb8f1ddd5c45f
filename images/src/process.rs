//! An upload → its renditions. The declared content type is not trusted: the format is sniffed
//! from the bytes, and only JPEG, PNG and WebP are decoded. Decoding is bounded before it
//! starts: at most [`MAX_IMAGE_BYTES`] in, a picture of at most [`MAX_SOURCE_PIXELS`] and
//! 10,000 pixels a side, and the decoder's allocations capped, so a small file that claims to
//! be huge (a decompression bomb) is refused without being decoded. The renditions are
//! re-encoded from pixels, so nothing of the upload's metadata (EXIF with its GPS position,
//! comments, colour profiles) survives; the EXIF orientation is applied first, so a phone's
//! portrait photo stays upright.

use std::io::Cursor;

use bytes::Bytes;
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use sha2::{Digest, Sha256};

/// The largest upload accepted (API.md: 10 MiB).
pub const MAX_IMAGE_BYTES: usize = 10 * 1024 * 1024;
/// The most pixels an upload may have (40 megapixels, a high-end phone's photo).
pub const MAX_SOURCE_PIXELS: u64 = 40_000_000;
/// The longest side of an upload.
const MAX_SIDE: u32 = 10_000;
/// The longest side of the page-size rendition (smaller pictures keep their size).
pub const PAGE_SIZE: u32 = 1200;
/// The longest side of the thumbnail.
pub const THUMBNAIL_SIZE: u32 = 320;
/// JPEG quality of the renditions.
const QUALITY: u8 = 82;

/// Why an upload is refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ImageError {
    #[error("the body is over {MAX_IMAGE_BYTES} bytes")]
    TooLarge,
    #[error("the body is not a JPEG, PNG or WebP image")]
    UnsupportedFormat,
    #[error("the image is {width}x{height} pixels; at most {MAX_SOURCE_PIXELS} pixels and {MAX_SIDE} a side are accepted")]
    TooManyPixels { width: u32, height: u32 },
    #[error("the image cannot be decoded: {0}")]
    Undecodable(String),
}

/// One encoded rendition.
#[derive(Debug, Clone)]
pub struct Rendition {
    pub bytes: Bytes,
    pub width: u32,
    pub height: u32,
}

/// What an upload became.
#[derive(Debug, Clone)]
pub struct Processed {
    /// 32 hex digits of the upload's SHA-256: the same bytes are the same image.
    pub id: String,
    pub page: Rendition,
    pub thumbnail: Rendition,
}

/// Sniffs, checks and decodes `upload`, and renders its page-size image and thumbnail.
/// CPU-bound (tens to hundreds of milliseconds for a photo): run it on the blocking pool.
pub fn process(upload: &[u8]) -> Result<Processed, ImageError> {
    if upload.len() > MAX_IMAGE_BYTES {
        return Err(ImageError::TooLarge);
    }
    let picture = decode(upload)?;
    let page = if picture.width().max(picture.height()) > PAGE_SIZE {
        picture.resize(PAGE_SIZE, PAGE_SIZE, FilterType::Lanczos3)
    } else {
        picture.clone()
    };
    let thumbnail = page.thumbnail(THUMBNAIL_SIZE, THUMBNAIL_SIZE);
    let digest = Sha256::digest(upload);
    let id = digest[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    Ok(Processed {
        id,
        page: encode(&page)?,
        thumbnail: encode(&thumbnail)?,
    })
}

fn decode(upload: &[u8]) -> Result<DynamicImage, ImageError> {
    let format = image::guess_format(upload).map_err(|_| ImageError::UnsupportedFormat)?;
    if !matches!(
        format,
        ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP
    ) {
        return Err(ImageError::UnsupportedFormat);
    }
    let mut reader = ImageReader::with_format(Cursor::new(upload), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    // RGBA at 16 bits a channel of the largest accepted picture, and some for the decoder.
    limits.max_alloc = Some(MAX_SOURCE_PIXELS * 8 + 64 * 1024 * 1024);
    reader.limits(limits);
    let undecodable = |error: image::ImageError| match error {
        image::ImageError::Limits(_) => ImageError::Undecodable(
            "decoding it would need more memory than an upload may take".into(),
        ),
        other => ImageError::Undecodable(other.to_string()),
    };
    let mut decoder = reader.into_decoder().map_err(undecodable)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_SOURCE_PIXELS
        || width > MAX_SIDE
        || height > MAX_SIDE
    {
        return Err(ImageError::TooManyPixels { width, height });
    }
    if width == 0 || height == 0 {
        return Err(ImageError::Undecodable("the image has no pixels".into()));
    }
    let orientation = decoder.orientation().map_err(undecodable)?;
    let mut picture = DynamicImage::from_decoder(decoder).map_err(undecodable)?;
    picture.apply_orientation(orientation);
    Ok(picture)
}

/// JPEG of `picture`, transparent parts over white (JPEG has no alpha).
fn encode(picture: &DynamicImage) -> Result<Rendition, ImageError> {
    let rgb = flatten(picture);
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, QUALITY)
        .encode_image(&rgb)
        .map_err(|error| ImageError::Undecodable(error.to_string()))?;
    Ok(Rendition {
        bytes: Bytes::from(out),
        width: rgb.width(),
        height: rgb.height(),
    })
}

fn flatten(picture: &DynamicImage) -> RgbImage {
    if !picture.color().has_alpha() {
        return picture.to_rgb8();
    }
    let rgba = picture.to_rgba8();
    let mut rgb = RgbImage::new(rgba.width(), rgba.height());
    for (target, source) in rgb.pixels_mut().zip(rgba.pixels()) {
        let alpha = u16::from(source[3]);
        for channel in 0..3 {
            let value = u16::from(source[channel]) * alpha + 255 * (255 - alpha);
            target[channel] = (value / 255) as u8;
        }
    }
    rgb
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, Rgba, RgbaImage};

    fn png(width: u32, height: u32) -> Vec<u8> {
        let picture = RgbaImage::from_fn(width, height, |x, y| {
            Rgba([
                (x % 256) as u8,
                (y % 256) as u8,
                90,
                if x < 10 { 0 } else { 255 },
            ])
        });
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(
                picture.as_raw(),
                width,
                height,
                image::ExtendedColorType::Rgba8,
            )
            .expect("encodes");
        out
    }

    #[test]
    fn a_large_png_becomes_a_page_image_and_a_thumbnail_of_bounded_size() {
        let processed = process(&png(2400, 1600)).expect("processes");
        assert_eq!((processed.page.width, processed.page.height), (1200, 800));
        assert_eq!(
            (processed.thumbnail.width, processed.thumbnail.height),
            (320, 213)
        );
        assert_eq!(
            image::guess_format(&processed.page.bytes).ok(),
            Some(ImageFormat::Jpeg)
        );
        assert_eq!(processed.id.len(), 32);
        // The same bytes are the same image.
        assert_eq!(
            process(&png(2400, 1600)).expect("processes").id,
            processed.id
        );
    }

    #[test]
    fn a_small_picture_keeps_its_size_on_the_page() {
        let processed = process(&png(200, 100)).expect("processes");
        assert_eq!((processed.page.width, processed.page.height), (200, 100));
    }

    #[test]
    fn bytes_that_are_no_image_or_another_format_are_refused_whatever_was_declared() {
        assert_eq!(
            process(b"not an image at all").err(),
            Some(ImageError::UnsupportedFormat)
        );
        // A GIF is an image, but not one of the accepted formats.
        assert_eq!(
            process(b"GIF89a\x01\x00\x01\x00\x00\x00\x00").err(),
            Some(ImageError::UnsupportedFormat)
        );
        let mut truncated = png(64, 64);
        truncated.truncate(60);
        assert!(matches!(
            process(&truncated),
            Err(ImageError::Undecodable(_))
        ));
    }

    #[test]
    fn a_small_file_claiming_a_huge_picture_is_refused_before_decoding() {
        // A PNG header of 60,000 x 60,000 pixels with no pixel data: a decompression bomb's
        // first bytes.
        let mut header = png(1, 1);
        header[16..20].copy_from_slice(&60_000u32.to_be_bytes());
        header[20..24].copy_from_slice(&60_000u32.to_be_bytes());
        assert!(matches!(
            process(&header),
            Err(ImageError::TooManyPixels { .. }) | Err(ImageError::Undecodable(_))
        ));
    }

    #[test]
    fn metadata_does_not_survive_the_renditions() {
        // A JPEG with an EXIF segment carrying a marker string.
        let mut jpeg = Vec::new();
        JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode_image(&RgbImage::from_pixel(64, 48, image::Rgb([10, 200, 30])))
            .expect("encodes");
        let marker = b"Exif\0\0SECRET-GPS-POSITION";
        let mut segment = vec![0xFF, 0xE1];
        segment.extend_from_slice(&((marker.len() + 2) as u16).to_be_bytes());
        segment.extend_from_slice(marker);
        let mut with_exif = jpeg[..2].to_vec();
        with_exif.extend_from_slice(&segment);
        with_exif.extend_from_slice(&jpeg[2..]);
        let processed = process(&with_exif).expect("processes");
        let find = |haystack: &[u8]| {
            haystack
                .windows(b"SECRET".len())
                .any(|window| window == b"SECRET")
        };
        assert!(find(&with_exif));
        assert!(!find(&processed.page.bytes));
        assert!(!find(&processed.thumbnail.bytes));
    }

    #[test]
    fn an_upload_over_the_limit_is_refused_without_looking_at_it() {
        let too_big = vec![0u8; MAX_IMAGE_BYTES + 1];
        assert_eq!(process(&too_big).err(), Some(ImageError::TooLarge));
    }
}
