//! `If-Match` values (one header per input line): parsing never panics, a malformed value is a
//! 400, and every version it yields is written in the header as digits.
#![no_main]

use axum::http::header::IF_MATCH;
use axum::http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|byte| *byte == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(IF_MATCH, value);
        }
    }
    match command_api::routes::if_match(&headers) {
        Ok(Some(versions)) => {
            let text = String::from_utf8_lossy(data);
            for version in versions {
                assert!(
                    text.contains(&version.to_string()),
                    "{version} is not in {text:?}"
                );
            }
        }
        Ok(None) => {}
        Err(problem) => assert_eq!(problem.status, 400),
    }
    if let Some(value) = headers.get(IF_MATCH) {
        if let Some(version) = web::middleware::parse_version_tag(value) {
            let tag = HeaderValue::from_str(&format!("\"{version}\"")).expect("a tag");
            assert_eq!(web::middleware::parse_version_tag(&tag), Some(version));
        }
    }
});
