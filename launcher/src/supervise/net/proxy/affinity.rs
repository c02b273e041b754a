//! `--affinity`: which worker a client's connection should reach, read
//! from its first request head, and the cookie corefit sets. Pure.
//!
//! - `client-ip`: the client's address, hashed ([`super::hashing`]). A
//!   peer in `--trust-forwarded` speaks for its clients: the address is
//!   the right-most untrusted one of `X-Forwarded-For` (or `Forwarded:
//!   for=`), as a proxy chain appends them.
//! - `cookie`: `corefit_worker=<token>`; the token is an opaque 16-hex
//!   digest of the worker slot under a per-run secret. Responses on a
//!   connection that came without a valid one (or whose worker is away)
//!   carry `Set-Cookie`. The proxy routes per connection: a keep-alive
//!   connection stays on the worker its first request chose.

use std::net::IpAddr;

use clap::ValueEnum;
use ipnet::IpNet;

use super::hashing::{client_key, mix};
use super::head::MAX_HEADERS;

/// `--affinity`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Affinity {
    /// Fewest open connections, ties round-robin.
    #[default]
    None,
    /// The same client address reaches the same worker.
    ClientIp,
    /// A cookie corefit sets names the worker.
    Cookie,
}

impl Affinity {
    pub fn as_str(self) -> &'static str {
        match self {
            Affinity::None => "none",
            Affinity::ClientIp => "client-ip",
            Affinity::Cookie => "cookie",
        }
    }
}

/// The cookie's name.
pub const COOKIE_NAME: &str = "corefit_worker";

/// What a connection asks of the balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Any worker (fewest connections).
    Any,
    /// The client with this key ([`client_key`]).
    Client(u64),
    /// This slot (a valid cookie), else any.
    Slot(usize),
}

/// The per-run secret the cookie tokens are made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieKey(u64);

impl CookieKey {
    pub fn new(secret: u64) -> CookieKey {
        CookieKey(secret)
    }

    /// The token of `slot`: 16 lowercase hex digits.
    pub fn token(self, slot: usize) -> String {
        format!("{:016x}", mix(self.0 ^ mix(slot as u64)))
    }

    /// The slot below `slots` whose token `value` is.
    pub fn slot_of(self, value: &str, slots: usize) -> Option<usize> {
        if value.len() != 16 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        (0..slots).find(|&s| self.token(s) == value)
    }

    /// The `Set-Cookie` field for `slot` (a session cookie).
    pub fn set_cookie(self, slot: usize) -> String {
        format!(
            "Set-Cookie: {COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Lax\r\n",
            self.token(slot)
        )
    }
}

/// What the balancer should do with a connection whose request head is
/// `head`, from a peer at `peer`.
pub fn want(
    affinity: Affinity,
    head: &[u8],
    peer: IpAddr,
    trusted: &[IpNet],
    cookies: CookieKey,
    slots: usize,
) -> Want {
    match affinity {
        Affinity::None => Want::Any,
        Affinity::ClientIp => Want::Client(client_key(client_ip(head, peer, trusted))),
        Affinity::Cookie => cookie(head, COOKIE_NAME)
            .and_then(|v| cookies.slot_of(&v, slots))
            .map_or(Want::Any, Want::Slot),
    }
}

/// The request head's fields (none when it does not parse).
fn fields(head: &[u8], mut each: impl FnMut(&str, &[u8])) {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    if matches!(req.parse(head), Ok(httparse::Status::Complete(_))) {
        for h in req.headers.iter() {
            each(h.name, h.value);
        }
    }
}

/// The value of cookie `name` in the head's `Cookie` fields (the first).
pub fn cookie(head: &[u8], name: &str) -> Option<String> {
    let mut found = None;
    fields(head, |field, value| {
        if found.is_some() || !field.eq_ignore_ascii_case("cookie") {
            return;
        }
        let Ok(text) = std::str::from_utf8(value) else {
            return;
        };
        found = text.split(';').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"').to_owned())
        });
    });
    found
}

/// The client's address: `peer`, or, when `peer` is trusted, the
/// right-most untrusted address its forwarding fields name
/// (`X-Forwarded-For` first, else `Forwarded: for=`); the left-most when
/// all are trusted.
pub fn client_ip(head: &[u8], peer: IpAddr, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let (mut xff, mut fwd) = (Vec::new(), Vec::new());
    fields(head, |field, value| {
        let text = String::from_utf8_lossy(value);
        if field.eq_ignore_ascii_case("x-forwarded-for") {
            xff.extend(text.split(',').filter_map(parse_node));
        } else if field.eq_ignore_ascii_case("forwarded") {
            fwd.extend(text.split(',').filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    k.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| parse_node(v))?
                })
            }));
        }
    });
    let chain = if xff.is_empty() { fwd } else { xff };
    chain
        .iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(chain.first())
        .copied()
        .unwrap_or(peer)
}

/// `1.2.3.4`, `1.2.3.4:80`, `"[2001:db8::1]:80"`, `2001:db8::1`.
fn parse_node(text: &str) -> Option<IpAddr> {
    let t = text.trim().trim_matches('"');
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = t.strip_prefix('[') {
        return rest.split(']').next()?.parse::<IpAddr>().ok();
    }
    let (host, port) = t.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// `head` (a complete response head) with `field` (a whole line, CRLF
/// included) added as its last field.
pub fn with_field(head: &[u8], field: &str) -> Vec<u8> {
    let end = if head.ends_with(b"\r\n\r\n") {
        head.len() - 2
    } else if head.ends_with(b"\n\n") {
        head.len() - 1
    } else {
        return head.to_vec();
    };
    let mut out = Vec::with_capacity(head.len() + field.len());
    out.extend_from_slice(&head[..end]);
    out.extend_from_slice(field.as_bytes());
    out.extend_from_slice(&head[end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    const KEY: CookieKey = CookieKey(42);

    #[test]
    fn cookie_tokens_name_a_slot_opaquely() {
        let t = KEY.token(2);
        assert_eq!(t.len(), 16);
        assert_ne!(t, KEY.token(3));
        assert_ne!(t, CookieKey(43).token(2));
        assert_eq!(KEY.slot_of(&t, 4), Some(2));
        // A slot beyond the pool, another run's token, garbage: invalid.
        assert_eq!(KEY.slot_of(&t, 2), None);
        for bad in [
            CookieKey(43).token(2).as_str(),
            "",
            "2",
            "zzzzzzzzzzzzzzzz",
            "ééééééééé",
        ] {
            assert_eq!(KEY.slot_of(bad, 4), None, "{bad}");
        }
        assert_eq!(
            KEY.set_cookie(2),
            format!("Set-Cookie: corefit_worker={t}; Path=/; HttpOnly; SameSite=Lax\r\n")
        );
    }

    #[test]
    fn the_cookie_is_read_among_others() {
        let t = KEY.token(1);
        let head =
            format!("GET / HTTP/1.1\r\nHost: a\r\nCookie: x=1; corefit_worker={t}; io=abc\r\n\r\n");
        assert_eq!(cookie(head.as_bytes(), COOKIE_NAME), Some(t.clone()));
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            want(Affinity::Cookie, head.as_bytes(), peer, &[], KEY, 4),
            Want::Slot(1)
        );
        // Node joins several cookie fields with "; "; a second field works too.
        let two =
            format!("GET / HTTP/1.1\r\nCookie: x=1\r\ncookie: corefit_worker=\"{t}\"\r\n\r\n");
        assert_eq!(cookie(two.as_bytes(), COOKIE_NAME), Some(t));
        let none = b"GET / HTTP/1.1\r\nCookie: corefit_worker2=1\r\n\r\n";
        assert_eq!(want(Affinity::Cookie, none, peer, &[], KEY, 4), Want::Any);
        assert_eq!(
            want(Affinity::Cookie, b"garbage", peer, &[], KEY, 4),
            Want::Any
        );
        assert_eq!(want(Affinity::None, none, peer, &[], KEY, 4), Want::Any);
    }

    #[test]
    fn client_ip_is_the_peer_unless_it_is_trusted() {
        let head = b"GET / HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6, 203.0.113.9, 10.0.0.2\r\n\r\n";
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(client_ip(head, peer, &[]), peer);
        // The right-most untrusted address: 6.6.6.6 could be spoofed by
        // 203.0.113.9, which is who reached the trusted proxy.
        let trusted = nets(&["10.0.0.0/8"]);
        let ip = client_ip(head, "::ffff:10.0.0.1".parse().unwrap(), &trusted);
        assert_eq!(ip, "203.0.113.9".parse::<IpAddr>().unwrap());
        let all = b"GET / HTTP/1.1\r\nX-Forwarded-For: 10.9.9.9, 10.0.0.2\r\n\r\n";
        assert_eq!(
            client_ip(all, peer, &trusted),
            "10.9.9.9".parse::<IpAddr>().unwrap()
        );
        let fwd = b"GET / HTTP/1.1\r\nForwarded: for=\"[2001:db8::7]:4711\";proto=http, for=10.0.0.3\r\n\r\n";
        assert_eq!(
            client_ip(fwd, peer, &trusted),
            "2001:db8::7".parse::<IpAddr>().unwrap()
        );
        let none = b"GET / HTTP/1.1\r\nX-Forwarded-For: unknown\r\n\r\n";
        assert_eq!(client_ip(none, peer, &trusted), peer);
        assert_eq!(
            want(Affinity::ClientIp, head, peer, &trusted, KEY, 4),
            Want::Client(client_key("203.0.113.9".parse().unwrap()))
        );
        assert_eq!(parse_node("1.2.3.4:80"), "1.2.3.4".parse().ok());
        assert_eq!(parse_node("_hidden"), None);
    }

    #[test]
    fn a_field_goes_at_the_end_of_a_response_head() {
        // (head, the head with the field); an unfinished head is left as is.
        let cases: [(&[u8], &[u8]); 4] = [
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nSet-Cookie: a=b\r\n\r\n",
            ),
            (
                b"HTTP/1.1 204 No Content\r\n\r\n",
                b"HTTP/1.1 204 No Content\r\nSet-Cookie: a=b\r\n\r\n",
            ),
            (
                b"HTTP/1.1 200 OK\nA: b\n\n",
                b"HTTP/1.1 200 OK\nA: b\nSet-Cookie: a=b\r\n\n",
            ),
            (b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\n"),
        ];
        for (head, want) in cases {
            let got = with_field(head, "Set-Cookie: a=b\r\n");
            assert_eq!(got, want, "{}", String::from_utf8_lossy(head));
        }
    }
}
