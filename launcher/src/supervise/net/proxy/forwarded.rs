//! Telling the app who the client is: `X-Forwarded-*` / `Forwarded`
//! (RFC 7239) on each request head, or a PROXY protocol header (v1 text,
//! v2 binary, built by the `ppp` crate) at the start of each connection
//! to a worker. Pure.
//!
//! A client's own `Forwarded` / `X-Forwarded-*` fields are removed and
//! replaced, unless its address is in the trusted ranges: then they are
//! kept and its address is appended, as a proxy in a chain does.

use std::net::{IpAddr, SocketAddr};

use clap::ValueEnum;
use ipnet::IpNet;

/// Which fields carry the client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ForwardedHeaders {
    /// The request head passes unchanged.
    Off,
    /// `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host`.
    XForwarded,
    /// `Forwarded: for=...;proto=...;host=...` (RFC 7239).
    Forwarded,
    /// Both.
    Both,
}

/// A PROXY protocol header on each connection to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProxyProtocol {
    Off,
    V1,
    V2,
}

/// How the client's address reaches the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarding {
    pub headers: ForwardedHeaders,
    /// Peers whose forwarding fields are kept (a proxy in front).
    pub trusted: Vec<IpNet>,
    pub proxy_protocol: ProxyProtocol,
}

impl Default for Forwarding {
    fn default() -> Forwarding {
        Forwarding {
            headers: ForwardedHeaders::Off,
            trusted: Vec::new(),
            proxy_protocol: ProxyProtocol::Off,
        }
    }
}

/// The scheme the client used: corefit's public port speaks plain HTTP.
const PROTO: &str = "http";

impl Forwarding {
    /// Whether request heads are rewritten at all.
    pub fn rewrites(&self) -> bool {
        self.headers != ForwardedHeaders::Off
    }

    /// `head` (a complete, already validated request head) with the
    /// forwarding fields for a client at `peer`.
    pub fn rewrite(&self, head: &[u8], peer: IpAddr) -> Vec<u8> {
        let mut headers = [httparse::EMPTY_HEADER; super::head::MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        if !matches!(req.parse(head), Ok(httparse::Status::Complete(_))) {
            return head.to_vec();
        }
        let peer = peer.to_canonical();
        let trusted = self.trusted.iter().any(|net| net.contains(&peer));
        // Empty lines before the request line are allowed (RFC 9112 §2.2)
        // and dropped here.
        let start = head
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(head.len());
        let line_end = start
            + head[start..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .unwrap_or(0)
            + 2;
        let mut out = Vec::with_capacity(head.len() + 128);
        out.extend_from_slice(&head[start..line_end]);
        let (mut xff, mut xfp, mut xfh, mut fwd) = (Vec::new(), None, None, Vec::new());
        let mut host = None;
        for h in req.headers.iter() {
            let is = |n: &str| h.name.eq_ignore_ascii_case(n);
            let value = String::from_utf8_lossy(h.value).into_owned();
            if is("x-forwarded-for") {
                xff.push(value);
            } else if is("x-forwarded-proto") {
                xfp.get_or_insert(value);
            } else if is("x-forwarded-host") {
                xfh.get_or_insert(value);
            } else if is("forwarded") {
                fwd.push(value);
            } else {
                if is("host") {
                    host.get_or_insert(value);
                }
                push_field(&mut out, h.name, h.value);
            }
        }
        if !trusted {
            (xff, xfp, xfh, fwd) = (Vec::new(), None, None, Vec::new());
        }
        let x = matches!(
            self.headers,
            ForwardedHeaders::XForwarded | ForwardedHeaders::Both
        );
        let f = matches!(
            self.headers,
            ForwardedHeaders::Forwarded | ForwardedHeaders::Both
        );
        // What this mode does not manage passes through as it came (when trusted).
        if x || !xff.is_empty() {
            xff.push(peer.to_string());
            push_field(&mut out, "X-Forwarded-For", xff.join(", ").as_bytes());
        }
        if x || xfp.is_some() {
            let proto = xfp.unwrap_or_else(|| PROTO.to_owned());
            push_field(&mut out, "X-Forwarded-Proto", proto.as_bytes());
        }
        if let Some(h) = xfh.or_else(|| host.clone().filter(|_| x)) {
            push_field(&mut out, "X-Forwarded-Host", h.as_bytes());
        }
        if f || !fwd.is_empty() {
            let mut element = format!("for={};proto={PROTO}", forwarded_node(peer));
            if let Some(h) = host.as_deref().filter(|h| is_token_or_hostport(h)) {
                element.push_str(&format!(";host={h}"));
            }
            fwd.push(element);
            push_field(&mut out, "Forwarded", fwd.join(", ").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The PROXY protocol header for a client at `peer` that reached
    /// corefit's public socket at `local`, if one is configured.
    pub fn proxy_header(&self, peer: SocketAddr, local: SocketAddr) -> Option<Vec<u8>> {
        let (src, dst) = same_family(peer, local);
        match self.proxy_protocol {
            ProxyProtocol::Off => None,
            ProxyProtocol::V1 => Some(
                ppp::v1::Addresses::from((src, dst))
                    .to_string()
                    .into_bytes(),
            ),
            ProxyProtocol::V2 => ppp::v2::Builder::with_addresses(
                ppp::v2::Version::Two | ppp::v2::Command::Proxy,
                ppp::v2::Protocol::Stream,
                (src, dst),
            )
            .build()
            .ok(),
        }
    }
}

fn push_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// RFC 7239 §6: an IPv6 node is quoted and bracketed.
fn forwarded_node(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
    }
}

/// A Host value that can stand unquoted in a Forwarded element.
fn is_token_or_hostport(h: &str) -> bool {
    !h.is_empty()
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~:!$&'*+^`|".contains(&b))
}

/// Both addresses in one family (IPv4-mapped IPv6 read as IPv4 where the
/// other side is IPv4, else IPv4 mapped into IPv6), as PROXY headers need.
fn same_family(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    let canon = |s: SocketAddr| SocketAddr::new(s.ip().to_canonical(), s.port());
    let (a, b) = (canon(a), canon(b));
    let v6 = |s: SocketAddr| match s.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), s.port()),
        IpAddr::V6(_) => s,
    };
    if a.is_ipv4() == b.is_ipv4() {
        (a, b)
    } else {
        (v6(a), v6(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fw(headers: ForwardedHeaders, trusted: &[&str]) -> Forwarding {
        Forwarding {
            headers,
            trusted: trusted.iter().map(|t| t.parse().unwrap()).collect(),
            proxy_protocol: ProxyProtocol::Off,
        }
    }

    fn text(v: Vec<u8>) -> String {
        String::from_utf8(v).unwrap()
    }

    const SPOOFED: &[u8] =
        b"GET /a HTTP/1.1\r\nHost: app.example\r\nX-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nX-Forwarded-Host: evil\r\n\r\n";

    #[test]
    fn untrusted_client_fields_are_replaced() {
        let out =
            text(fw(ForwardedHeaders::Both, &[]).rewrite(SPOOFED, "10.0.0.7".parse().unwrap()));
        assert_eq!(
            out,
            "GET /a HTTP/1.1\r\nHost: app.example\r\nX-Forwarded-For: 10.0.0.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: app.example\r\nForwarded: for=10.0.0.7;proto=http;host=app.example\r\n\r\n"
        );
        let out =
            text(fw(ForwardedHeaders::Forwarded, &[]).rewrite(SPOOFED, "::1".parse().unwrap()));
        assert!(
            !out.contains("6.6.6.6") && !out.contains("evil") && !out.contains("X-Forwarded"),
            "{out}"
        );
        assert!(
            out.contains("Forwarded: for=\"[::1]\";proto=http;host=app.example\r\n"),
            "{out}"
        );
    }

    #[test]
    fn empty_lines_before_the_request_line_are_dropped() {
        // Found by fuzzing: the request line was taken to be the first
        // empty line, and the rewritten head did not parse.
        let out = fw(ForwardedHeaders::XForwarded, &[]).rewrite(
            b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            "10.0.0.7".parse().unwrap(),
        );
        assert_eq!(
            text(out),
            "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n\r\n"
        );
    }

    #[test]
    fn trusted_peer_fields_are_kept_and_extended() {
        let out = text(
            fw(ForwardedHeaders::XForwarded, &["10.0.0.0/8"])
                .rewrite(SPOOFED, "::ffff:10.1.2.3".parse().unwrap()),
        );
        assert!(
            out.contains("X-Forwarded-For: 6.6.6.6, 10.1.2.3\r\n"),
            "{out}"
        );
        assert!(out.contains("X-Forwarded-Host: evil\r\n"), "{out}");
        assert!(
            out.contains("Forwarded: for=6.6.6.6, for=10.1.2.3;proto=http;host=app.example\r\n"),
            "{out}"
        );
    }

    #[test]
    fn proxy_protocol_headers() {
        let mut f = Forwarding::default();
        let peer: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        assert_eq!(f.proxy_header(peer, local), None);
        f.proxy_protocol = ProxyProtocol::V1;
        assert_eq!(
            f.proxy_header(peer, local).unwrap(),
            b"PROXY TCP4 192.0.2.1 127.0.0.1 5000 3000\r\n"
        );
        let v6: SocketAddr = "[2001:db8::1]:5000".parse().unwrap();
        assert_eq!(
            text(f.proxy_header(v6, local).unwrap()),
            "PROXY TCP6 2001:db8::1 ::ffff:127.0.0.1 5000 3000\r\n"
        );
        f.proxy_protocol = ProxyProtocol::V2;
        let h = f.proxy_header(peer, local).unwrap();
        assert_eq!(&h[..12], b"\r\n\r\n\0\r\nQUIT\n");
        assert_eq!((h[12], h[13], h.len()), (0x21, 0x11, 16 + 12));
    }
}
