//! `NOTIFY_SOCKET` datagrams (the sd_notify protocol) on arbitrary bytes,
//! cut to `MAX_NOTIFY_DATAGRAM` as `recv` into corefit's buffer cuts them,
//! through `readiness::says_ready`, the check `NotifySocket::watch` makes.
//!
//! Invariants: no panic; a datagram is ready exactly when one of its lines
//! is ready, so splitting it at a newline, adding other lines, or adding a
//! `READY=1` line behaves accordingly; a ready datagram holds `READY=1`.
#![no_main]

use corefit::supervise::readiness::{says_ready, MAX_NOTIFY_DATAGRAM};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let datagram = &data[..data.len().min(MAX_NOTIFY_DATAGRAM)];
    let ready = says_ready(datagram);
    if ready {
        assert!(datagram.windows(7).any(|w| w == b"READY=1"));
    }
    // Split at every newline: ready iff some part is.
    if let Some(i) = datagram.iter().position(|&b| b == b'\n') {
        let (a, b) = (&datagram[..i], &datagram[i + 1..]);
        assert_eq!(ready, says_ready(a) || says_ready(b));
    }
    // Other assignments around it change nothing; READY=1 makes it ready.
    let mut more = b"STATUS=starting\nMAINPID=1\n".to_vec();
    more.extend_from_slice(datagram);
    more.extend_from_slice(b"\nERRNO=0");
    assert_eq!(says_ready(&more), ready);
    let mut told = datagram.to_vec();
    told.extend_from_slice(b"\nREADY=1\n");
    assert!(says_ready(&told));
});
