//! The Node IPC channel (`NODE_CHANNEL_FD`, JSON lines) on arbitrary bytes
//! arriving in arbitrary chunks, through `readiness::IpcLines` and
//! `ipc_line_says_ready`, as `IpcChannel::watch` reads it.
//!
//! Input: the first byte picks the line cap (1..=1021 bytes, so long lines
//! are common; also the real `MAX_IPC_LINE_BYTES` when it is 0), the second
//! the chunk size the stream is cut into; the rest is the stream.
//!
//! Invariants: no panic; the splitter never holds more than the cap; the
//! lines it hands out are exactly the stream's lines (as `BufRead::lines`
//! splits them) that fit the cap, whatever the chunking; readiness is what
//! the unbounded `str::lines` reader reported for the same lines.
#![no_main]

use corefit::supervise::readiness::{
    ipc_line_says_ready, ipc_says_ready, IpcLines, MAX_IPC_LINE_BYTES,
};
use libfuzzer_sys::fuzz_target;

fn split(stream: &[u8], cap: usize, chunk: usize) -> Vec<Vec<u8>> {
    let mut lines = IpcLines::new(cap);
    let mut out = Vec::new();
    for c in stream.chunks(chunk) {
        lines.push(c, |l| out.push(l.to_vec()));
        assert!(lines.buffered() <= cap, "{} > {cap}", lines.buffered());
    }
    lines.finish(|l| out.push(l.to_vec()));
    out
}

fuzz_target!(|data: &[u8]| {
    let [cap, chunk, stream @ ..] = data else {
        return;
    };
    let cap = match *cap {
        0 => MAX_IPC_LINE_BYTES,
        c => usize::from(c) * 4 - 3,
    };
    let chunk = usize::from(*chunk).max(1);

    // The reference: split on '\n', drop one trailing '\r', keep lines
    // that fit; the last line only when it is not empty.
    let mut pieces: Vec<&[u8]> = stream.split(|&b| b == b'\n').collect();
    if pieces.last().is_some_and(|l| l.is_empty()) {
        pieces.pop();
    }
    let ends_with_newline = stream.last() == Some(&b'\n');
    let expected: Vec<Vec<u8>> = pieces
        .iter()
        .enumerate()
        .filter(|(_, l)| l.len() <= cap)
        .map(|(i, l)| {
            let last_open = i == pieces.len() - 1 && !ends_with_newline;
            if last_open {
                l.to_vec()
            } else {
                l.strip_suffix(b"\r").unwrap_or(l).to_vec()
            }
        })
        .collect();

    let got = split(stream, cap, chunk);
    assert_eq!(got, expected);
    assert_eq!(split(stream, cap, 1), got);
    assert_eq!(split(stream, cap, stream.len().max(1)), got);

    let ready = got.iter().any(|l| ipc_line_says_ready(l));
    // The unbounded reader this replaces, on streams it could read whole.
    if let Ok(s) = std::str::from_utf8(stream) {
        if pieces.iter().all(|l| l.len() <= cap) {
            assert_eq!(ready, s.lines().any(ipc_says_ready));
        }
    }
});
