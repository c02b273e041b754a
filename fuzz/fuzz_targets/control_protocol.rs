//! The control socket's protocol on arbitrary bytes, read as the server
//! reads a connection (`control::server`: at most `MAX_REQUEST_BYTES` + 1
//! bytes, one line, UTF-8), then `parse_request`; scale targets
//! (`ScaleTarget::from_str`, also `corefit scale N|+N|-N`) and the scale
//! rule (`scale::resolve`) on what parses; responses carrying arbitrary
//! error text.
//!
//! Invariants: no panic; a request that parses round-trips through its
//! JSON; an over-long line is refused as too long; a scale target
//! round-trips through its text; a scale decision is at least 1 and within
//! the cap (4096 when forced); a response line is one line and round-trips.
#![no_main]

use std::io::{BufRead, Read};

use corefit::control::protocol::{ProtocolError, MAX_REQUEST_BYTES};
use corefit::control::scale::{self, ScaleCap, ABSOLUTE_MAX_WORKERS};
use corefit::control::{parse_request, Request, Response, ScaleTarget};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The server's read: BufReader over `take(MAX_REQUEST_BYTES + 1)`, one line.
    let mut line = String::new();
    let read =
        std::io::BufReader::new(data.take(MAX_REQUEST_BYTES as u64 + 1)).read_line(&mut line);
    if read.is_ok() {
        assert!(line.len() <= MAX_REQUEST_BYTES + 1);
        match parse_request(&line) {
            Ok(r) => {
                let json = serde_json::to_string(&r).unwrap();
                assert_eq!(parse_request(&json), Ok(r.clone()));
                if let Request::Scale { target, force } = r {
                    let cap = ScaleCap {
                        max: u32::from(data.first().copied().unwrap_or(4)),
                        why: "fuzz".to_owned(),
                    };
                    let current = u32::from(data.last().copied().unwrap_or(1)).max(1);
                    if let Ok(n) = scale::resolve(current, target, &cap, force) {
                        assert!(n >= 1);
                        assert!(
                            n <= if force {
                                ABSOLUTE_MAX_WORKERS
                            } else {
                                cap.max.max(1)
                            }
                        );
                    }
                }
            }
            Err(ProtocolError::TooLong) => assert!(line.len() > MAX_REQUEST_BYTES),
            Err(ProtocolError::Malformed(_)) => assert!(line.len() <= MAX_REQUEST_BYTES),
        }
    }

    let s = String::from_utf8_lossy(data);
    if let Ok(t) = s.parse::<ScaleTarget>() {
        assert_eq!(t.to_string().parse::<ScaleTarget>(), Ok(t));
    }

    let reply = Response::error(s.as_ref());
    let out = reply.to_line();
    assert!(out.ends_with('\n') && out.matches('\n').count() == 1);
    let back: Response = serde_json::from_str(&out).unwrap();
    assert_eq!(back, reply);
});
