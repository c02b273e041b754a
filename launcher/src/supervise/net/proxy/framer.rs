//! The two framers of one proxied connection: the client's bytes cut into
//! request heads and bodies, the worker's into response heads and bodies,
//! however the bytes arrive. Pure: each `next` looks at the unconsumed
//! bytes at the front of a buffer and names the segment there.
//!
//! ```text
//!  request:  Head ──body?──▶ Body* ──▶ Head ...      (upgrade/CONNECT:
//!                                                     AwaitSwitch until the
//!  response: Head(1xx)* ──▶ Head ──▶ Body* ──▶ ...    response says Tunnel)
//! ```

use super::body::{Body, Piece};
use super::head::{
    parse_request, parse_response, AfterResponse, FrameError, RequestHead, RequestMeta,
    ResponseHead,
};

/// A segment at the front of the client's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestSegment {
    Head(RequestHead),
    Body(Piece),
    /// Opaque bytes after a protocol switch.
    Tunnel(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RequestState {
    Head,
    Body {
        body: Body,
        then_switch: bool,
    },
    /// An upgrade or CONNECT request was sent: nothing more is framed
    /// until its response says whether the protocol switched.
    AwaitSwitch,
    Tunnel,
    /// A body that cannot be framed: the rest goes, as it is, to the
    /// worker that has its head (as a direct connection would), and
    /// nothing on this connection is framed, resent or reconnected again.
    Raw,
    Failed(FrameError),
}

/// Frames the client's side.
#[derive(Debug, Clone)]
pub struct RequestFramer {
    state: RequestState,
    max_head: usize,
}

impl RequestFramer {
    pub fn new(max_head: usize) -> RequestFramer {
        RequestFramer {
            state: RequestState::Head,
            max_head,
        }
    }

    /// The segment at the front of `buf`; `None` when more bytes are
    /// needed (or nothing may be framed until a response arrives).
    pub fn next(&mut self, buf: &[u8]) -> Result<Option<RequestSegment>, FrameError> {
        let step = match &mut self.state {
            RequestState::Failed(e) => Err(*e),
            RequestState::AwaitSwitch => Ok(None),
            RequestState::Tunnel | RequestState::Raw => {
                Ok((!buf.is_empty()).then_some(RequestSegment::Tunnel(buf.len())))
            }
            RequestState::Head => match parse_request(buf, self.max_head) {
                Ok(Some(head)) => {
                    self.state = match (&head.body, head.meta.upgrade) {
                        (Some(body), then_switch) => RequestState::Body {
                            body: body.clone(),
                            then_switch,
                        },
                        (None, true) => RequestState::AwaitSwitch,
                        (None, false) => RequestState::Head,
                    };
                    Ok(Some(RequestSegment::Head(head)))
                }
                other => other.map(|_| None),
            },
            RequestState::Body { body, then_switch } => {
                let then_switch = *then_switch;
                match body.next(buf) {
                    Ok(Some(piece)) => {
                        if piece.last {
                            self.state = if then_switch {
                                RequestState::AwaitSwitch
                            } else {
                                RequestState::Head
                            };
                        }
                        Ok(Some(RequestSegment::Body(piece)))
                    }
                    other => other.map(|_| None),
                }
            }
        };
        match step {
            // Inside a body whose head went out: hand the rest over raw.
            Err(FrameError::BadChunk) => {
                self.state = RequestState::Raw;
                Ok((!buf.is_empty()).then_some(RequestSegment::Tunnel(buf.len())))
            }
            Err(e) => {
                self.state = RequestState::Failed(e);
                Err(e)
            }
            ok => ok,
        }
    }

    /// The response to the pending upgrade arrived: a tunnel now, or
    /// back to requests.
    pub fn switched(&mut self, tunnel: bool) {
        if self.state == RequestState::AwaitSwitch {
            self.state = if tunnel {
                RequestState::Tunnel
            } else {
                RequestState::Head
            };
        }
    }

    /// Between requests (or inside a head not yet complete).
    pub fn at_head(&self) -> bool {
        self.state == RequestState::Head
    }

    /// Waiting for the answer to an upgrade.
    pub fn awaiting_switch(&self) -> bool {
        self.state == RequestState::AwaitSwitch
    }

    pub fn tunnel(&self) -> bool {
        self.state == RequestState::Tunnel
    }
}

/// A segment at the front of the worker's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseSegment {
    Head(ResponseHead),
    Body(Piece),
    Tunnel(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ResponseState {
    Head,
    Body(Body),
    Tunnel,
    Failed(FrameError),
}

/// Frames the worker's side.
#[derive(Debug, Clone)]
pub struct ResponseFramer {
    state: ResponseState,
    max_head: usize,
}

impl ResponseFramer {
    pub fn new(max_head: usize) -> ResponseFramer {
        ResponseFramer {
            state: ResponseState::Head,
            max_head,
        }
    }

    /// The segment at the front of `buf`, which answers `front` (the
    /// oldest request without a final response).
    pub fn next(
        &mut self,
        buf: &[u8],
        front: Option<RequestMeta>,
    ) -> Result<Option<ResponseSegment>, FrameError> {
        let step = match &mut self.state {
            ResponseState::Failed(e) => Err(*e),
            ResponseState::Tunnel => {
                Ok((!buf.is_empty()).then_some(ResponseSegment::Tunnel(buf.len())))
            }
            ResponseState::Head => match parse_response(buf, front, self.max_head) {
                Ok(Some(head)) => {
                    self.state = match &head.then {
                        AfterResponse::Interim | AfterResponse::Done => ResponseState::Head,
                        AfterResponse::Body(body) => ResponseState::Body(body.clone()),
                        AfterResponse::Tunnel => ResponseState::Tunnel,
                    };
                    Ok(Some(ResponseSegment::Head(head)))
                }
                Ok(None) if buf.is_empty() => Ok(None),
                Ok(None) if front.is_none() => Err(FrameError::Unsolicited),
                other => other.map(|_| None),
            },
            ResponseState::Body(body) => match body.next(buf) {
                Ok(Some(piece)) => {
                    if piece.last {
                        self.state = ResponseState::Head;
                    }
                    Ok(Some(ResponseSegment::Body(piece)))
                }
                other => other.map(|_| None),
            },
        };
        if let Err(e) = step {
            self.state = ResponseState::Failed(e);
        }
        step
    }

    /// Between responses: nothing of a response is half-forwarded.
    pub fn at_head(&self) -> bool {
        self.state == ResponseState::Head
    }

    /// Inside a body that ends when the worker closes.
    pub fn until_close(&self) -> bool {
        self.state == ResponseState::Body(Body::UntilClose)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kinds and lengths of the segments `input` is cut into when it
    /// arrives `step` bytes at a time.
    fn cut(input: &[u8], step: usize) -> Result<Vec<(char, usize)>, FrameError> {
        let mut f = RequestFramer::new(64 * 1024);
        let (mut at, mut avail, mut out) = (0, 0, Vec::new());
        loop {
            match f.next(&input[at..avail])? {
                Some(RequestSegment::Head(h)) => {
                    out.push(('H', h.len));
                    at += h.len;
                }
                Some(RequestSegment::Body(p)) => {
                    // Merge body pieces: their split depends on arrival.
                    match out.last_mut() {
                        Some(('B', n)) => *n += p.len,
                        _ => out.push(('B', p.len)),
                    }
                    at += p.len;
                }
                Some(RequestSegment::Tunnel(n)) => {
                    out.push(('T', n));
                    at += n;
                }
                None if avail == input.len() => return Ok(out),
                None => avail = (avail + step).min(input.len()),
            }
        }
    }

    #[test]
    fn body_bytes_are_never_a_request_however_they_arrive() {
        let smuggle = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
        let post = format!(
            "POST /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            smuggle.len()
        );
        let chunked = b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n23;x=y\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\nT: 1\r\n\r\n";
        let input = [
            post.as_bytes(),
            smuggle,
            chunked,
            b"GET /b HTTP/1.1\r\n\r\n",
        ]
        .concat();
        let whole = cut(&input, input.len()).unwrap();
        assert_eq!(
            whole.iter().map(|s| s.0).collect::<String>(),
            "HBHBH",
            "{whole:?}"
        );
        for step in 1..64 {
            assert_eq!(cut(&input, step).unwrap(), whole, "step {step}");
        }
    }

    #[test]
    fn a_bad_chunk_hands_the_rest_over_raw() {
        let mut f = RequestFramer::new(1024);
        let head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(f.next(head), Ok(Some(RequestSegment::Head(_)))));
        let rest = b"0x5\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n";
        assert_eq!(f.next(rest), Ok(Some(RequestSegment::Tunnel(rest.len()))));
        assert!(!f.at_head(), "never back to framing requests");
        assert_eq!(
            f.next(b"GET / HTTP/1.1\r\n\r\n"),
            Ok(Some(RequestSegment::Tunnel(18)))
        );
    }

    #[test]
    fn upgrade_holds_bytes_until_the_answer() {
        let mut f = RequestFramer::new(1024);
        let req = b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
        assert!(matches!(f.next(req), Ok(Some(RequestSegment::Head(_)))));
        assert_eq!(f.next(b"GET / HTTP/1.1\r\n\r\n"), Ok(None));
        f.switched(true);
        assert_eq!(
            f.next(b"\x81\x05hello"),
            Ok(Some(RequestSegment::Tunnel(7)))
        );
        let mut g = RequestFramer::new(1024);
        assert!(matches!(g.next(req), Ok(Some(RequestSegment::Head(_)))));
        g.switched(false);
        assert!(matches!(
            g.next(b"GET / HTTP/1.1\r\n\r\n"),
            Ok(Some(RequestSegment::Head(_)))
        ));
    }

    #[test]
    fn responses_follow_their_requests() {
        let get = RequestMeta {
            head: false,
            connect: false,
            upgrade: false,
        };
        let head = RequestMeta { head: true, ..get };
        let mut r = ResponseFramer::new(1024);
        let a = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        assert!(matches!(
            r.next(a, Some(head)),
            Ok(Some(ResponseSegment::Head(_)))
        ));
        assert!(r.at_head(), "a HEAD response has no body");
        assert!(matches!(
            r.next(a, Some(get)),
            Ok(Some(ResponseSegment::Head(_)))
        ));
        assert!(!r.at_head());
        assert_eq!(
            r.next(b"helloHTTP", Some(get)),
            Ok(Some(ResponseSegment::Body(Piece { len: 5, last: true })))
        );
        assert_eq!(
            r.next(b"HTTP/1.1 200 OK\r\n\r\n", None),
            Err(FrameError::Unsolicited)
        );
    }
}
