//! The requests of one client connection that a worker has not answered
//! yet, and what to do when that worker's connection ends. Pure.
//!
//! When a worker corefit is stopping (reload, scale-down, memory ceiling)
//! closes a connection, requests it never answered may go to another
//! worker, as an HTTP client may resend them itself (RFC 9110 §9.2.2):
//! only whole requests with no body, whose methods are idempotent, none of
//! whose response bytes reached the client, and that the worker cannot
//! have been working on: it had them for less than [`RETRY_WINDOW`], or it
//! reset the connection. A socket closed with received bytes unread sends
//! a reset instead of a FIN (RFC 2525 §2.17, Linux `tcp_close`), so a reset
//! says the worker never read all that was sent: the race in which a
//! stopping Node server's `closeIdleConnections()` runs before the loop
//! reads a request already in its socket, however long a busy event loop
//! held it. Everything else ends the client's connection right after the
//! bytes already forwarded: a truncated response rather than a spliced
//! one, and a body is never read as a request.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::head::RequestMeta;

/// A request a stopping worker had for longer than this before it closed
/// the connection is not sent again: the worker was working on it.
pub const RETRY_WINDOW: Duration = Duration::from_millis(100);

/// Resends per client connection, at most.
pub const MAX_RESENDS: u32 = 3;

/// A request sent to the current worker, not answered yet.
#[derive(Debug, Clone)]
pub struct Sent {
    pub meta: RequestMeta,
    /// The head exactly as sent, when the request may be sent again
    /// (idempotent, no body); `None` otherwise.
    pub replay: Option<Bytes>,
    pub sent_at: Instant,
}

/// The unanswered requests, oldest first.
#[derive(Debug, Default)]
pub struct InFlight {
    queue: VecDeque<Sent>,
    /// A response head (interim or final) for the oldest one was forwarded.
    front_answered: bool,
}

impl InFlight {
    pub fn push(&mut self, sent: Sent) {
        self.queue.push_back(sent);
    }

    /// The request the next response answers.
    pub fn front(&self) -> Option<RequestMeta> {
        self.queue.front().map(|s| s.meta)
    }

    /// Part of the oldest one's response was forwarded.
    pub fn answering(&mut self) {
        self.front_answered = true;
    }

    /// The oldest one's final response is complete.
    pub fn answered(&mut self) {
        self.queue.pop_front();
        self.front_answered = false;
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Every request was sent again at `now` to another worker.
    pub fn resent(&mut self, now: Instant) {
        for s in &mut self.queue {
            s.sent_at = now;
        }
        self.front_answered = false;
    }
}

/// How the connection stood when the worker's side ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamEnd {
    /// Part of a response (a head, some body) was forwarded and the rest
    /// never came, or the connection had become a tunnel.
    pub response_open: bool,
    /// The client was inside a request body (or tunnel) when it ended.
    pub request_open: bool,
    /// The worker is no longer routed: corefit is stopping it.
    pub worker_stopping: bool,
    /// The last complete response said the server would close.
    pub closed_by_response: bool,
    /// The client closed its side.
    pub client_done: bool,
    /// The worker's side ended with a reset (it closed with bytes of
    /// ours unread), not a FIN.
    pub reset: bool,
    /// Resends so far on this client connection.
    pub resends: u32,
}

/// What the proxy does next with the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Nothing was pending and corefit is stopping the worker: keep the
    /// client and pick a worker for its next request when it comes.
    Reconnect,
    /// Send these heads, in order, to another worker.
    Resend(Vec<Bytes>),
    /// Close the client's connection after what was forwarded.
    Close,
}

/// The decision when the current worker's connection ended.
pub fn after_upstream(inflight: &InFlight, end: UpstreamEnd, now: Instant) -> Next {
    if end.response_open || inflight.front_answered || end.closed_by_response {
        return Next::Close;
    }
    if inflight.is_empty() {
        // A worker still routed closed on purpose (its keep-alive
        // timeout, `Connection: close` semantics of its own): the client
        // sees the close, as it would directly. A stopping worker's close
        // is corefit's doing: the client keeps its connection.
        return if end.worker_stopping && !end.client_done && !end.request_open {
            Next::Reconnect
        } else {
            Next::Close
        };
    }
    // Not being worked on: sent just now, or never read (a reset).
    let unread = end.reset
        || inflight
            .queue
            .front()
            .is_some_and(|s| now.saturating_duration_since(s.sent_at) < RETRY_WINDOW);
    let replays: Option<Vec<Bytes>> = inflight.queue.iter().map(|s| s.replay.clone()).collect();
    match replays {
        Some(heads)
            if end.worker_stopping && unread && !end.request_open && end.resends < MAX_RESENDS =>
        {
            Next::Resend(heads)
        }
        _ => Next::Close,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET: RequestMeta = RequestMeta {
        head: false,
        connect: false,
        upgrade: false,
    };

    /// GET requests sent at `at`, each replayable or not.
    fn in_flight(replayable: &[bool], at: Instant) -> InFlight {
        let mut f = InFlight::default();
        for &replay in replayable {
            f.push(Sent {
                meta: GET,
                replay: replay.then(|| Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n")),
                sent_at: at,
            });
        }
        f
    }

    const STOPPING: UpstreamEnd = UpstreamEnd {
        response_open: false,
        request_open: false,
        worker_stopping: true,
        closed_by_response: false,
        client_done: false,
        reset: false,
        resends: 0,
    };

    /// `STOPPING` with one thing changed.
    fn stopping_but(change: impl FnOnce(&mut UpstreamEnd)) -> UpstreamEnd {
        let mut end = STOPPING;
        change(&mut end);
        end
    }

    #[test]
    fn idle_connection_of_a_stopping_worker_reconnects_lazily() {
        let now = Instant::now();
        let f = InFlight::default();
        assert_eq!(after_upstream(&f, STOPPING, now), Next::Reconnect);
        let routed = stopping_but(|e| e.worker_stopping = false);
        assert_eq!(after_upstream(&f, routed, now), Next::Close);
        let done = stopping_but(|e| e.client_done = true);
        assert_eq!(after_upstream(&f, done, now), Next::Close);
    }

    #[test]
    fn resends_only_whole_fresh_replayable_requests_of_a_stopping_worker() {
        let now = Instant::now();
        let mut f = in_flight(&[true, true], now);
        assert!(matches!(after_upstream(&f, STOPPING, now), Next::Resend(h) if h.len() == 2));
        // A crash (still routed) is not resent.
        let routed = stopping_but(|e| e.worker_stopping = false);
        assert_eq!(after_upstream(&f, routed, now), Next::Close);
        // Held too long: the worker was working on it.
        assert_eq!(
            after_upstream(&f, STOPPING, now + RETRY_WINDOW),
            Next::Close
        );
        // Any response byte, a body under way, or resent enough: never.
        for end in [
            stopping_but(|e| e.response_open = true),
            stopping_but(|e| e.request_open = true),
            stopping_but(|e| e.resends = MAX_RESENDS),
        ] {
            assert_eq!(after_upstream(&f, end, now), Next::Close, "{end:?}");
        }
        f.answering();
        assert_eq!(after_upstream(&f, STOPPING, now), Next::Close);
    }

    #[test]
    fn a_reset_resends_however_long_the_worker_held_the_requests() {
        let now = Instant::now();
        let f = in_flight(&[true], now);
        let later = now + RETRY_WINDOW * 50;
        let reset = stopping_but(|e| e.reset = true);
        assert!(matches!(after_upstream(&f, reset, later), Next::Resend(h) if h.len() == 1));
        // Still never for a crash, a body, an answer begun or too many.
        let changes: [fn(&mut UpstreamEnd); 4] = [
            |e| e.worker_stopping = false,
            |e| e.request_open = true,
            |e| e.response_open = true,
            |e| e.resends = MAX_RESENDS,
        ];
        for change in changes {
            let end = stopping_but(|e| {
                e.reset = true;
                change(e)
            });
            assert_eq!(after_upstream(&f, end, later), Next::Close, "{end:?}");
        }
        let unreplayable = in_flight(&[false], now);
        assert_eq!(after_upstream(&unreplayable, reset, later), Next::Close);
    }

    #[test]
    fn one_unreplayable_request_closes() {
        let now = Instant::now();
        let mut f = in_flight(&[true, false], now);
        assert_eq!(after_upstream(&f, STOPPING, now), Next::Close);
        f.answered();
        assert_eq!(after_upstream(&f, STOPPING, now), Next::Close);
        f.answered();
        assert_eq!(after_upstream(&f, STOPPING, now), Next::Reconnect);
    }
}
