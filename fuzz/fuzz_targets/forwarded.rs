//! `Forwarded` and `X-Forwarded-For` (one header per input line, the first byte picks which):
//! never a panic; an untrusted peer is the client whatever it sends; behind a trusted proxy
//! the client is the peer or an address the headers name.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use web::client::TrustedProxies;

fn proxies() -> &'static TrustedProxies {
    static PROXIES: OnceLock<TrustedProxies> = OnceLock::new();
    PROXIES.get_or_init(|| TrustedProxies::parse("127.0.0.0/8, ::1").expect("proxies"))
}

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|byte| *byte == b'\n') {
        let Some((&selector, value)) = line.split_first() else {
            continue;
        };
        let name = if selector % 2 == 0 {
            HeaderName::from_static("forwarded")
        } else {
            HeaderName::from_static("x-forwarded-for")
        };
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name, value);
        }
    }
    let outsider = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    assert_eq!(proxies().client(outsider, &headers), outsider);
    let proxy = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let client = proxies().client(proxy, &headers);
    if client != proxy {
        // Spelled as given (IPv6 has many spellings): an IPv4 client in dotted form, or any
        // address in a header that holds one with colons.
        let named = headers.values().any(|value| {
            let text = String::from_utf8_lossy(value.as_bytes());
            match client {
                IpAddr::V4(v4) => text.contains(&v4.to_string()) || text.contains(':'),
                IpAddr::V6(_) => text.contains(':'),
            }
        });
        assert!(named, "{client} is not named in {headers:?}");
    }
});
