//! The proxy's HTTP/1.1 framing under arbitrary bytes in arbitrary pieces
//! (launcher/src/supervise/proxy). Invariants, not only "no panic":
//! - however the client's bytes arrive, they are cut into the same heads
//!   and the same bodies (a body byte can never become a head by timing);
//! - the bytes cut never exceed the input, and every cut advances;
//! - a head the framer accepts, rewritten with forwarding fields, frames
//!   exactly the same (same length of head-less input, same body), so the
//!   rewrite never changes where a request ends;
//! - the same for the worker's side, with the requests it answers.

#![no_main]

use corefit::supervise::proxy::forwarded::{ForwardedHeaders, Forwarding, ProxyProtocol};
use corefit::supervise::proxy::framer::{
    RequestFramer, RequestSegment, ResponseFramer, ResponseSegment,
};
use corefit::supervise::proxy::head::{parse_request, RequestMeta};
use libfuzzer_sys::fuzz_target;

const MAX_HEAD: usize = 2048;

/// (kind, length) of each segment, consecutive body pieces merged;
/// `Err` with the segments so far when framing failed.
fn requests(input: &[u8], step: usize) -> (Vec<(u8, usize)>, bool) {
    let mut f = RequestFramer::new(MAX_HEAD);
    let (mut at, mut avail, mut out) = (0usize, 0usize, Vec::new());
    loop {
        match f.next(&input[at..avail]) {
            Ok(Some(seg)) => {
                let (kind, len) = match seg {
                    RequestSegment::Head(h) => (b'H', h.len),
                    RequestSegment::Body(p) => (b'B', p.len),
                    RequestSegment::Tunnel(n) => (b'T', n),
                };
                assert!(len > 0 || kind == b'B', "a head or tunnel segment of 0 bytes");
                assert!(at + len <= avail, "cut past the bytes given");
                at += len;
                match out.last_mut() {
                    Some((k, n)) if *k == kind && kind != b'H' => *n += len,
                    _ if len > 0 => out.push((kind, len)),
                    _ => {}
                }
                // An upgrade waits for its answer: say "switched" so the
                // rest is a tunnel, the same whatever the pieces.
                if f.awaiting_switch() {
                    f.switched(true);
                }
            }
            Ok(None) if avail == input.len() => return (out, true),
            Ok(None) => avail = (avail + step).min(input.len()),
            Err(_) => return (out, false),
        }
    }
}

fn responses(input: &[u8], step: usize, metas: &[RequestMeta]) -> (Vec<(u8, usize)>, bool) {
    let mut f = ResponseFramer::new(MAX_HEAD);
    let (mut at, mut avail, mut out, mut front) = (0usize, 0usize, Vec::new(), 0usize);
    loop {
        match f.next(&input[at..avail], metas.get(front).copied()) {
            Ok(Some(seg)) => {
                let (kind, len) = match seg {
                    ResponseSegment::Head(h) => {
                        if h.then == corefit::supervise::proxy::head::AfterResponse::Done {
                            front += 1;
                        }
                        (b'H', h.len)
                    }
                    ResponseSegment::Body(p) => {
                        if p.last {
                            front += 1;
                        }
                        (b'B', p.len)
                    }
                    ResponseSegment::Tunnel(n) => (b'T', n),
                };
                assert!(at + len <= avail);
                at += len;
                match out.last_mut() {
                    Some((k, n)) if *k == kind && kind != b'H' => *n += len,
                    _ if len > 0 => out.push((kind, len)),
                    _ => {}
                }
            }
            Ok(None) if avail == input.len() => return (out, true),
            Ok(None) => avail = (avail + step).min(input.len()),
            Err(_) => return (out, false),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let step = usize::from(data[0]) % 17 + 1;
    let which = data[1];
    let input = &data[2..];

    let whole = requests(input, input.len().max(1));
    let pieces = requests(input, step);
    // Pieces may stop earlier only where whole input fails too; where
    // both frame, the cuts agree.
    if whole.1 && pieces.1 {
        assert_eq!(whole.0, pieces.0, "request cuts depend on arrival");
    } else {
        let n = whole.0.len().min(pieces.0.len()).saturating_sub(1);
        assert_eq!(whole.0[..n], pieces.0[..n], "request cuts depend on arrival");
    }

    if let Ok(Some(head)) = parse_request(input, MAX_HEAD) {
        let fw = Forwarding {
            headers: match which % 3 {
                0 => ForwardedHeaders::XForwarded,
                1 => ForwardedHeaders::Forwarded,
                _ => ForwardedHeaders::Both,
            },
            trusted: if which & 4 == 0 { vec![] } else { vec!["0.0.0.0/0".parse().unwrap()] },
            proxy_protocol: ProxyProtocol::Off,
        };
        let rewritten = fw.rewrite(&input[..head.len], "192.0.2.7".parse().unwrap());
        let again = parse_request(&rewritten, usize::MAX)
            .expect("a rewritten head parses")
            .expect("a rewritten head is complete");
        assert_eq!(again.len, rewritten.len());
        assert_eq!(again.body, head.body, "the rewrite changed the body's framing");
        assert_eq!(again.meta, head.meta);
    }

    let metas: Vec<RequestMeta> = (0..8)
        .map(|i| RequestMeta {
            head: (which >> i) & 1 == 1 && i % 3 == 0,
            connect: false,
            upgrade: i == 7,
        })
        .collect();
    let whole = responses(input, input.len().max(1), &metas);
    let pieces = responses(input, step, &metas);
    if whole.1 && pieces.1 {
        assert_eq!(whole.0, pieces.0, "response cuts depend on arrival");
    }
});
