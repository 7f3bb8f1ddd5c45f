//! Pictures for the demo products, so the storefront of a fresh `cargo run` shows images
//! without loading anything from another site: one per demo colour (a disc of the product's
//! colour on a soft backdrop), drawn here, put through the same processing as an upload and
//! written to the image store. Names are content-addressed, so seeding twice writes the same
//! files. A few tens of milliseconds in all.

use std::collections::HashMap;

use anyhow::Context;
use image::{DynamicImage, ImageEncoder, Rgb, RgbImage};
use images::ImageStore;

/// The side of a drawn picture (the page rendition keeps it; the thumbnail is 320).
const SIDE: u32 = 480;

/// Demo colour → the URL of its picture.
pub type DemoPictures = HashMap<&'static str, String>;

/// The sRGB of each demo colour (`crate::demo`'s).
const SWATCHES: [(&str, [u8; 3]); 9] = [
    ("black", [40, 40, 46]),
    ("white", [244, 244, 240]),
    ("silver", [186, 190, 196]),
    ("navy", [28, 44, 96]),
    ("red", [196, 44, 52]),
    ("green", [46, 132, 78]),
    ("grey", [120, 124, 130]),
    ("blue", [52, 110, 210]),
    ("beige", [222, 204, 170]),
];

/// Draws, processes and stores the picture of every demo colour.
pub async fn store(store: &dyn ImageStore) -> anyhow::Result<DemoPictures> {
    let processed = tokio::task::spawn_blocking(|| {
        SWATCHES
            .iter()
            .map(|(name, colour)| Ok((*name, images::process(&png(*colour)?)?)))
            .collect::<anyhow::Result<Vec<_>>>()
    })
    .await
    .context("drawing the demo pictures")??;
    let mut pictures = DemoPictures::new();
    for (name, image) in processed {
        pictures.insert(name, images::save(store, &image).await?.url);
    }
    Ok(pictures)
}

/// A disc of `colour` with a soft shadow on a light backdrop tinted by it, as a PNG.
fn png(colour: [u8; 3]) -> anyhow::Result<Vec<u8>> {
    let centre = SIDE as f32 / 2.0;
    let radius = SIDE as f32 * 0.34;
    let backdrop = colour.map(|channel| (235.0 + f32::from(channel) * 0.06) as u8);
    let picture = RgbImage::from_fn(SIDE, SIDE, |x, y| {
        let (dx, dy) = (x as f32 - centre, y as f32 - centre);
        let distance = (dx * dx + dy * dy).sqrt();
        let shadow = ((dx - 10.0).powi(2) + (dy - 14.0).powi(2)).sqrt();
        let mix = |a: [u8; 3], b: [u8; 3], t: f32| {
            Rgb([0, 1, 2].map(|i| (f32::from(a[i]) * (1.0 - t) + f32::from(b[i]) * t) as u8))
        };
        if distance <= radius {
            // A little light from the top left.
            let light = ((-dx - dy) / (radius * 2.0)).clamp(-0.5, 0.5) * 0.35;
            let target = if light > 0.0 {
                [255, 255, 255]
            } else {
                [0, 0, 0]
            };
            mix(colour, target, light.abs())
        } else if shadow <= radius + 6.0 {
            mix(backdrop, [150, 150, 150], 0.25)
        } else {
            Rgb(backdrop)
        }
    });
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out).write_image(
        DynamicImage::ImageRgb8(picture).as_bytes(),
        SIDE,
        SIDE,
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_demo_colour_has_a_swatch() {
        for colour in crate::demo::COLORS {
            assert!(SWATCHES.iter().any(|(name, _)| name == colour), "{colour}");
        }
    }

    #[tokio::test]
    async fn every_demo_colour_gets_a_stored_picture_of_its_own() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let images =
            images::FsImageStore::open(directory.path().to_path_buf(), "/images").expect("opens");
        let pictures = store(&images).await.expect("stores");
        assert_eq!(pictures.len(), SWATCHES.len());
        let mut urls: Vec<&String> = pictures.values().collect();
        urls.sort();
        urls.dedup();
        assert_eq!(urls.len(), SWATCHES.len(), "one picture per colour");
        for url in urls {
            let name = url.trim_start_matches("/images/");
            let page = images.get(name).await.expect("reads").expect("stored");
            assert_eq!(
                image::load_from_memory(&page).expect("decodes").width(),
                SIDE
            );
        }
    }
}
