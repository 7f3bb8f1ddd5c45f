//! Who the client is: the TCP peer, or behind a trusted proxy the address the proxy names.
//!
//! `CATALOG_TRUSTED_PROXIES` lists the proxies (CIDRs) whose `Forwarded` / `X-Forwarded-For`
//! headers are believed. The client is found by walking the chain from the right (the hop
//! nearest the server) past every trusted address: the first untrusted one is the client. A
//! header from an untrusted peer is ignored, so a client cannot choose its own address.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request};
use ipnet::IpNet;

/// The proxies whose forwarding headers name the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

impl TrustedProxies {
    /// No trusted proxy: the client is always the TCP peer.
    pub fn none() -> Self {
        TrustedProxies::default()
    }

    /// From a comma-separated list of CIDRs or addresses (`10.0.0.0/8, 127.0.0.1`).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut networks = Vec::new();
        for item in list
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            let network = match IpNet::from_str(item) {
                Ok(network) => network,
                Err(_) => IpAddr::from_str(item)
                    .map(IpNet::from)
                    .map_err(|_| format!("{item:?} is not an address or a CIDR"))?,
            };
            networks.push(network);
        }
        Ok(TrustedProxies { networks })
    }

    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    pub fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.networks
            .iter()
            .any(|network| network.contains(&address))
    }

    /// The client of a request that came from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let mut hops = forwarded_chain(headers);
        // From the right: the nearest hop first.
        hops.reverse();
        let mut client = peer;
        for hop in hops {
            match hop {
                Some(address) => {
                    client = address;
                    if !self.trusts(address) {
                        return address;
                    }
                }
                // An unreadable hop ends what can be believed: the last trusted hop named it.
                None => return client,
            }
        }
        client
    }
}

/// The client's address, set on every request by [`resolve_client`] (absent only where a test
/// calls a router without a connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Puts the request's [`ClientIp`] in its extensions.
pub fn resolve_client<B>(proxies: &TrustedProxies, request: &mut Request<B>) {
    let Some(peer) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
    else {
        return;
    };
    let client = proxies.client(peer, request.headers());
    request.extensions_mut().insert(ClientIp(client));
}

/// IPv4-mapped IPv6 addresses as IPv4, so one client has one key.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The hops the forwarding headers name, left (the original client) to right. `Forwarded`
/// (RFC 7239) wins over `X-Forwarded-For` when present. `None` for a hop that is not an address
/// (`unknown`, an obfuscated identifier, garbage).
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<_> = headers
        .get_all("forwarded")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|element| {
            element
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                .and_then(|(_, value)| parse_node(value))
        })
        .collect();
    if !forwarded.is_empty() {
        return forwarded;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(parse_node)
        .collect()
}

/// One node: `192.0.2.1`, `192.0.2.1:4711`, `"[2001:db8::1]:4711"`, `2001:db8::1`.
fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(address) = IpAddr::from_str(text) {
        return Some(canonical(address));
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, _) = rest.split_once(']')?;
        return IpAddr::from_str(inside).ok().map(canonical);
    }
    let (host, port) = text.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    IpAddr::from_str(host).ok().map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().expect("header"));
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_the_headers_say() {
        let proxies = TrustedProxies::none();
        let sent = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(proxies.client(ip("127.0.0.1"), &sent), ip("127.0.0.1"));
    }

    #[test]
    fn behind_a_trusted_proxy_the_nearest_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").expect("parse");
        // The client put a made-up address first; the proxies appended the real one.
        let sent = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.1.2.3")]);
        assert_eq!(proxies.client(ip("127.0.0.1"), &sent), ip("203.0.113.9"));
        // An untrusted peer's header is ignored.
        assert_eq!(
            proxies.client(ip("198.51.100.7"), &sent),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn forwarded_is_read_before_x_forwarded_for_with_ports_and_brackets() {
        let proxies = TrustedProxies::parse("127.0.0.0/8").expect("parse");
        let sent = headers(&[
            (
                "forwarded",
                "for=\"[2001:db8::7]:4711\";proto=https, for=127.0.0.2",
            ),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(proxies.client(ip("127.0.0.1"), &sent), ip("2001:db8::7"));
        let sent = headers(&[("forwarded", "for=192.0.2.60:8080")]);
        assert_eq!(proxies.client(ip("127.0.0.1"), &sent), ip("192.0.2.60"));
    }

    #[test]
    fn an_unreadable_hop_stops_the_walk_at_the_last_trusted_one() {
        let proxies = TrustedProxies::parse("127.0.0.1").expect("parse");
        let sent = headers(&[("x-forwarded-for", "203.0.113.9, garbage")]);
        assert_eq!(proxies.client(ip("127.0.0.1"), &sent), ip("127.0.0.1"));
        let sent = headers(&[]);
        assert_eq!(proxies.client(ip("127.0.0.1"), &sent), ip("127.0.0.1"));
    }

    #[test]
    fn a_bad_list_is_refused_and_mapped_addresses_match_their_ipv4_network() {
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.local").is_err());
        let proxies = TrustedProxies::parse("127.0.0.1").expect("parse");
        assert!(proxies.trusts(ip("::ffff:127.0.0.1")));
    }
}
