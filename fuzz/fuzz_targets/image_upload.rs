//! Image uploads (`POST /api/products/{id}/images`): any bytes. Never a panic; a refusal is one
//! of the upload's errors; what is accepted becomes renditions within their bounds, both JPEG.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(processed) = images::process(data) {
        let page = &processed.page;
        let thumbnail = &processed.thumbnail;
        assert!(page.width.max(page.height) <= images::PAGE_SIZE);
        assert!(thumbnail.width.max(thumbnail.height) <= images::THUMBNAIL_SIZE);
        assert!(page.width > 0 && page.height > 0 && thumbnail.width > 0);
        assert_eq!(&page.bytes[..2], b"\xff\xd8", "the page rendition is a JPEG");
        assert_eq!(processed.id.len(), 32);
    }
});
