//! What `--affinity` reads from a client's request head (launcher/src/
//! supervise/net/proxy/affinity.rs): the `corefit_worker` cookie, the
//! client's address behind trusted proxies (`X-Forwarded-For`,
//! `Forwarded: for=`), and the `Set-Cookie` field added to a response
//! head. Invariants, not only "no panic":
//! - a cookie value found is text the head holds;
//! - an untrusted peer is its own client, whatever the head says; a
//!   trusted one is replaced only through a forwarding field;
//! - a slot the balancer is asked for is below the pool's size, and its
//!   token is exactly the cookie's value;
//! - adding a field to a complete head keeps it a head that ends where it
//!   did, with the field's bytes inside.

#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use corefit::supervise::proxy::affinity::{
    client_ip, cookie, want, with_field, Affinity, CookieKey, Want,
};
use libfuzzer_sys::fuzz_target;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, head)) = data.split_first() else {
        return;
    };
    let peer = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (flags & 0x3f)));
    let trusted: Vec<ipnet::IpNet> = if flags & 0x80 != 0 {
        vec!["127.0.0.0/8".parse().unwrap()]
    } else {
        Vec::new()
    };

    if let Some(v) = cookie(head, "corefit_worker") {
        assert!(contains(head, v.as_bytes()), "cookie value {v:?} not in the head");
    }

    let client = client_ip(head, peer, &trusted);
    if trusted.is_empty() {
        assert_eq!(client, peer, "an untrusted peer is its own client");
    } else if client != peer {
        let lower = head.to_ascii_lowercase();
        assert!(
            contains(&lower, b"forwarded"),
            "the client {client} came from no forwarding field"
        );
    }

    let key = CookieKey::new(u64::from(flags) * 0x9e37_79b9);
    let slots = 1 + usize::from(flags & 0x07);
    for affinity in [Affinity::None, Affinity::ClientIp, Affinity::Cookie] {
        if let Want::Slot(s) = want(affinity, head, peer, &trusted, key, slots) {
            assert!(s < slots, "slot {s} of {slots}");
            let v = cookie(head, "corefit_worker").expect("a slot comes from the cookie");
            assert_eq!(key.token(s), v);
        }
    }

    let field = key.set_cookie(slots - 1);
    let out = with_field(head, &field);
    if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
        assert_eq!(out.len(), head.len() + field.len());
        assert!(contains(&out, field.as_bytes()));
        assert!(out.ends_with(b"\n\n") || out.ends_with(b"\r\n\r\n") || out.ends_with(b"\r\n\n"));
    } else {
        assert_eq!(out, head, "an incomplete head is left alone");
    }
});
