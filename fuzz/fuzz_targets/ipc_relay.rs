//! The socket.io relay's routing (launcher/src/supervise/ipc/route.rs):
//! what workers send on their IPC channels decides which other workers
//! get each line. Arbitrary sequences of channels opening, sending lines
//! and closing. Invariants, not only "no panic":
//! - a line is only ever delivered to channels that are open, never back
//!   to its sender unless it is a response addressed to it, and at most
//!   once to each;
//! - a response goes to at most one channel;
//! - a closing channel's WORKER_EXIT lines are JSON of type 3 from the
//!   adapter, sent only to the channels still open;
//! - how much a channel remembers stays bounded (ids per channel).

#![no_main]

use std::collections::BTreeSet;

use corefit::supervise::ipc::route::{Router, Verdict, SOURCE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut router = Router::default();
    let mut open: BTreeSet<u64> = BTreeSet::new();
    for op in data.split(|&b| b == b'\n').take(256) {
        let Some((&sel, line)) = op.split_first() else {
            continue;
        };
        let ch = u64::from(sel & 0x03);
        match sel >> 6 {
            0 => {
                router.opened(ch);
                open.insert(ch);
            }
            1 if open.contains(&ch) => {
                for (to, exit) in router.closed(ch) {
                    open.remove(&ch);
                    assert!(to.iter().all(|c| open.contains(c) && *c != ch), "{to:?}");
                    let v: serde_json::Value = serde_json::from_slice(&exit).expect("JSON");
                    assert_eq!(v["source"], SOURCE);
                    assert_eq!(v["type"], 3);
                }
                open.remove(&ch);
            }
            _ if open.contains(&ch) => {
                if let Verdict::Deliver(to) = router.route(ch, line) {
                    let unique: BTreeSet<u64> = to.iter().copied().collect();
                    assert_eq!(unique.len(), to.len(), "delivered twice: {to:?}");
                    assert!(to.iter().all(|c| open.contains(c)), "to a closed channel: {to:?}");
                    let kind = serde_json::from_slice::<serde_json::Value>(line)
                        .ok()
                        .and_then(|v| v["type"].as_u64());
                    if matches!(kind, Some(9 | 11)) {
                        assert!(to.len() <= 1, "a response to {} channels", to.len());
                    } else {
                        assert!(!to.contains(&ch), "a broadcast back to its sender");
                    }
                }
            }
            _ => {}
        }
    }
});
