//! When the proxy may send a client's bytes again to another worker: the
//! HTTP rule for automatic retries (RFC 9110 §9.2.2), applied to a
//! worker corefit itself is stopping.
//!
//! A Node 20 app that stops on SIGTERM with `server.close()` destroys its
//! idle keep-alive connections at once, including those whose next request
//! already sits unread in the kernel; the client sees the connection close
//! with no response. A browser or an HTTP client library retries such a
//! request when it is idempotent; `wrk` and many other clients count a
//! failure. Because corefit knows the worker is being stopped (reload,
//! scale-down, memory ceiling), its proxy can do what the client would
//! have done: when the worker closes the connection while bytes the client
//! sent since the last response got no answer, and those bytes begin an
//! idempotent HTTP/1.x request, they go to another worker.
//!
//! Never for a worker that is still routed (a crash is not retried), never
//! for POST/PATCH or anything not HTTP, never once any response byte for
//! those bytes arrived, and never when the worker had the request for more
//! than `proxy::RETRY_WINDOW` before closing (it was working on it, e.g. a
//! hung worker killed after the grace period: sending its request on
//! could hang the next worker too).

/// Most bytes kept for a retry; a longer unanswered request is not retried.
pub const MAX_RETRY_BYTES: usize = 64 * 1024;

/// Methods a client may retry automatically (RFC 9110 §9.2.2).
const IDEMPOTENT: [&[u8]; 6] = [
    b"GET ",
    b"HEAD ",
    b"OPTIONS ",
    b"TRACE ",
    b"PUT ",
    b"DELETE ",
];

/// True when `unanswered` (the client's bytes since the last response
/// byte) starts an idempotent HTTP/1.x request.
pub fn retryable(unanswered: &[u8]) -> bool {
    if unanswered.is_empty() || unanswered.len() > MAX_RETRY_BYTES {
        return false;
    }
    if !IDEMPOTENT.iter().any(|m| unanswered.starts_with(m)) {
        return false;
    }
    // The request line names HTTP/1.x.
    let line_end = unanswered
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(unanswered.len());
    unanswered[..line_end].windows(7).any(|w| w == b"HTTP/1.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_idempotent_http_requests() {
        assert!(retryable(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(retryable(b"DELETE /a HTTP/1.1\r\n"));
        assert!(retryable(
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n\r\n"
        ));
        assert!(!retryable(b"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"));
        assert!(!retryable(b"PATCH / HTTP/1.1\r\n"));
        assert!(!retryable(b""));
        assert!(!retryable(b"\x16\x03\x01 tls hello"));
        assert!(!retryable(b"GET /nothttp\r\n"));
        let big = [
            b"GET / HTTP/1.1\r\n".as_slice(),
            &vec![b'a'; MAX_RETRY_BYTES],
        ]
        .concat();
        assert!(!retryable(&big));
    }
}
