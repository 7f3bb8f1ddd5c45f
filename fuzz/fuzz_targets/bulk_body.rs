//! Bulk-create bodies (`POST /api/products/bulk`): a JSON array or NDJSON. The first byte picks
//! the media type. Never a panic; a refusal is a 4xx; NDJSON gives at most one item per line.
#![no_main]

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let media_type = match selector % 4 {
        0 => "application/json",
        1 => "application/x-ndjson",
        2 => "Application/X-NDJSON; charset=utf-8",
        _ => "text/plain",
    };
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(media_type));
    match command_api::routes::products::bulk_items(&headers, body) {
        Ok(items) => {
            if selector % 4 != 0 {
                let lines = body.split(|byte| *byte == b'\n').count();
                assert!(
                    items.len() <= lines,
                    "{} items from {lines} lines",
                    items.len()
                );
            }
            for problem in items.into_iter().filter_map(Result::err) {
                assert_eq!(problem.status, 400);
            }
        }
        Err(problem) => assert!((400..500).contains(&problem.status), "{}", problem.status),
    }
});
