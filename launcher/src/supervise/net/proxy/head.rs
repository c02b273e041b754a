//! Request and response heads, parsed by `httparse`, reduced to what
//! framing needs: where the head ends, the method, and how the body is
//! delimited (RFC 9112 §6). Pure.
//!
//! Anything ambiguous is an error, never a guess: Content-Length and
//! Transfer-Encoding together, differing or malformed Content-Length
//! values, a request Transfer-Encoding whose last coding is not chunked,
//! Transfer-Encoding in HTTP/1.0, a bare LF anywhere in a head.

use std::mem::MaybeUninit;

use thiserror::Error;

use super::body::{Body, Chunk};

/// Most header fields in one head (Node keeps 2000; 256 covers real clients).
pub const MAX_HEADERS: usize = 256;

/// Why bytes could not be framed as HTTP/1.x.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("malformed head")]
    BadHead,
    #[error("head too large")]
    HeadTooLarge,
    #[error("invalid or conflicting Content-Length")]
    BadLength,
    #[error("invalid Transfer-Encoding")]
    BadTransferEncoding,
    #[error("malformed chunked body")]
    BadChunk,
    #[error("a response with no request waiting for it")]
    Unsolicited,
    #[error("a protocol switch nobody asked for")]
    BadUpgrade,
}

impl FrameError {
    /// The answer a client gets when its request head is refused: the
    /// very bytes Node's own server sends in these cases.
    pub fn client_answer(self) -> &'static [u8] {
        match self {
            FrameError::HeadTooLarge => {
                b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n"
            }
            _ => b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n",
        }
    }
}

/// What the response side needs to know of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestMeta {
    /// `HEAD`: the response has no body.
    pub head: bool,
    /// `CONNECT`: a 2xx answer turns the connection into a tunnel.
    pub connect: bool,
    /// Asked for a protocol switch (`Upgrade` with `Connection: upgrade`).
    pub upgrade: bool,
}

/// A complete request head at the front of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Bytes of the head, blank line included.
    pub len: usize,
    pub meta: RequestMeta,
    /// A method a client may send again on its own (RFC 9110 §9.2.2).
    pub idempotent: bool,
    /// The body that follows, if any.
    pub body: Option<Body>,
}

/// A complete response head at the front of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub len: usize,
    pub status: u16,
    /// What follows the head.
    pub then: AfterResponse,
    /// The server closes the connection after this response.
    pub close: bool,
}

/// What follows a response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterResponse {
    /// An interim (1xx) response: the final one is still to come.
    Interim,
    /// The final response, complete with its head.
    Done,
    /// The final response's body.
    Body(Body),
    /// The connection is now a tunnel (101, or 2xx to CONNECT).
    Tunnel,
}

/// Parses the request head at the front of `buf`: `None` while incomplete.
pub fn parse_request(buf: &[u8], max_head: usize) -> Result<Option<RequestHead>, FrameError> {
    // Left uninitialised: httparse writes only the ones it fills.
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut req,
        buf,
        &mut headers,
    );
    let Some(len) = head_len(parsed, buf, max_head)? else {
        return Ok(None);
    };
    if len > max_head {
        return Err(FrameError::HeadTooLarge);
    }
    reject_bare_lf(&buf[..len])?;
    let method = req.method.unwrap_or("");
    let http10 = req.version == Some(0);
    let fields = Fields::of(req.headers);
    let connect = method == "CONNECT";
    let body = match (fields.chunked()?, fields.length()?) {
        (Some(_), Some(_)) => return Err(FrameError::BadLength),
        (Some(_), None) if http10 => return Err(FrameError::BadTransferEncoding),
        (Some(true), None) => Some(Body::Chunked(Chunk::Size)),
        (Some(false), None) => return Err(FrameError::BadTransferEncoding),
        (None, Some(0)) | (None, None) => None,
        (None, Some(n)) => Some(Body::Length(n)),
    };
    Ok(Some(RequestHead {
        len,
        meta: RequestMeta {
            head: method == "HEAD",
            connect,
            upgrade: connect || (fields.upgrade && fields.connection_has("upgrade")),
        },
        idempotent: matches!(
            method,
            "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
        ),
        body,
    }))
}

/// The length of a head httparse has `parsed` from `buf`: `None` while
/// incomplete, an error when it is malformed or outgrows `max_head` unfinished.
fn head_len(
    parsed: httparse::Result<usize>,
    buf: &[u8],
    max_head: usize,
) -> Result<Option<usize>, FrameError> {
    match parsed {
        Ok(httparse::Status::Complete(len)) => Ok(Some(len)),
        Ok(httparse::Status::Partial) if buf.len() > max_head => Err(FrameError::HeadTooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(FrameError::HeadTooLarge),
        Err(_) => Err(FrameError::BadHead),
    }
}

/// Parses the response head at the front of `buf`, the answer to `req`.
pub fn parse_response(
    buf: &[u8],
    req: Option<RequestMeta>,
    max_head: usize,
) -> Result<Option<ResponseHead>, FrameError> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut headers,
    );
    let Some(len) = head_len(parsed, buf, max_head)? else {
        return Ok(None);
    };
    let req = req.ok_or(FrameError::Unsolicited)?;
    reject_bare_lf(&buf[..len])?;
    let status = resp.code.unwrap_or(0);
    let fields = Fields::of(resp.headers);
    let http10 = resp.version == Some(0);
    let close = fields.connection_has("close") || (http10 && !fields.connection_has("keep-alive"));
    let then = match status {
        101 if req.upgrade && !req.connect => AfterResponse::Tunnel,
        101 => return Err(FrameError::BadUpgrade),
        100..=199 => AfterResponse::Interim,
        200..=299 if req.connect => AfterResponse::Tunnel,
        204 | 304 => AfterResponse::Done,
        _ if req.head => AfterResponse::Done,
        _ => match (fields.chunked()?, fields.length()?) {
            (Some(true), _) => AfterResponse::Body(Body::Chunked(Chunk::Size)),
            (Some(false), _) => AfterResponse::Body(Body::UntilClose),
            (None, Some(0)) => AfterResponse::Done,
            (None, Some(n)) => AfterResponse::Body(Body::Length(n)),
            (None, None) => AfterResponse::Body(Body::UntilClose),
        },
    };
    let close = close || matches!(then, AfterResponse::Body(Body::UntilClose));
    Ok(Some(ResponseHead {
        len,
        status,
        then,
        close,
    }))
}

/// A LF not preceded by CR ends a line for some parsers and not for
/// others: refused.
pub fn reject_bare_lf(head: &[u8]) -> Result<(), FrameError> {
    let bare = head
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'));
    if bare {
        Err(FrameError::BadHead)
    } else {
        Ok(())
    }
}

/// The header fields framing looks at.
struct Fields<'a> {
    lengths: Vec<&'a [u8]>,
    codings: Vec<&'a [u8]>,
    connection: Vec<&'a [u8]>,
    upgrade: bool,
}

impl<'a> Fields<'a> {
    fn of(headers: &[httparse::Header<'a>]) -> Fields<'a> {
        let mut f = Fields {
            lengths: Vec::new(),
            codings: Vec::new(),
            connection: Vec::new(),
            upgrade: false,
        };
        for h in headers {
            let name = h.name;
            if name.eq_ignore_ascii_case("content-length") {
                f.lengths.push(h.value);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                f.codings.push(h.value);
            } else if name.eq_ignore_ascii_case("connection") {
                f.connection.push(h.value);
            } else if name.eq_ignore_ascii_case("upgrade") {
                f.upgrade = true;
            }
        }
        f
    }

    /// `Some(true)` when Transfer-Encoding ends in chunked (once),
    /// `Some(false)` when it is present and does not, `None` when absent.
    fn chunked(&self) -> Result<Option<bool>, FrameError> {
        if self.codings.is_empty() {
            return Ok(None);
        }
        let codings: Vec<&[u8]> = list_items(&self.codings).collect();
        if codings.is_empty() {
            return Err(FrameError::BadTransferEncoding);
        }
        let chunked = codings
            .iter()
            .filter(|c| c.eq_ignore_ascii_case(b"chunked"))
            .count();
        let last_chunked = codings
            .last()
            .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"));
        match (chunked, last_chunked) {
            (0, _) => Ok(Some(false)),
            (1, true) => Ok(Some(true)),
            _ => Err(FrameError::BadTransferEncoding),
        }
    }

    /// The one Content-Length every field and list item agrees on.
    fn length(&self) -> Result<Option<u64>, FrameError> {
        let mut value = None;
        for item in list_items(&self.lengths) {
            if item.is_empty() || !item.iter().all(u8::is_ascii_digit) || item.len() > 18 {
                return Err(FrameError::BadLength);
            }
            let n = std::str::from_utf8(item)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(FrameError::BadLength)?;
            if value.is_some_and(|v| v != n) {
                return Err(FrameError::BadLength);
            }
            value = Some(n);
        }
        if !self.lengths.is_empty() && value.is_none() {
            return Err(FrameError::BadLength);
        }
        Ok(value)
    }

    fn connection_has(&self, token: &str) -> bool {
        list_items(&self.connection).any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
    }
}

/// The comma-separated items of several field values, trimmed.
fn list_items<'a>(values: &'a [&'a [u8]]) -> impl Iterator<Item = &'a [u8]> + 'a {
    values
        .iter()
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|item| item.trim_ascii())
        .filter(|item| !item.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 64 * 1024;

    fn req(s: &str) -> Result<Option<RequestHead>, FrameError> {
        parse_request(s.as_bytes(), MAX)
    }

    #[test]
    fn request_bodies() {
        let h = req("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET")
            .unwrap()
            .unwrap();
        assert_eq!((h.len, h.body, h.idempotent), (27, None, true));
        let h = req("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.body, h.idempotent), (Some(Body::Length(5)), false));
        let h = req("PUT / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.body, Some(Body::Chunked(Chunk::Size)));
        let h = req("POST / HTTP/1.1\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.body, Some(Body::Length(3)));
        assert_eq!(req("GET / HTTP/1.1\r\nHost: x\r\n").unwrap(), None);
    }

    #[test]
    fn ambiguous_requests_are_refused() {
        let cases = [
            (
                "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                FrameError::BadLength,
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                FrameError::BadLength,
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
                FrameError::BadLength,
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
                FrameError::BadLength,
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                FrameError::BadLength,
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
                FrameError::BadTransferEncoding,
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                FrameError::BadTransferEncoding,
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
                FrameError::BadTransferEncoding,
            ),
            (
                "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                FrameError::BadTransferEncoding,
            ),
            ("GET / HTTP/1.1\nHost: x\r\n\r\n", FrameError::BadHead),
            (
                "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
                FrameError::BadHead,
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",
                FrameError::BadHead,
            ),
            ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", FrameError::BadHead),
        ];
        for (text, want) in cases {
            assert_eq!(req(text), Err(want), "{text:?}");
        }
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX));
        assert_eq!(req(&big), Err(FrameError::HeadTooLarge));
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: 1\r\n"))
            .collect();
        assert_eq!(
            req(&format!("GET / HTTP/1.1\r\n{many}\r\n")),
            Err(FrameError::HeadTooLarge)
        );
    }

    #[test]
    fn upgrades_and_connect() {
        let h = req(
            "GET /ws HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(h.meta.upgrade && !h.meta.connect);
        let h = req("GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(
            !h.meta.upgrade,
            "Upgrade without Connection: upgrade is not a switch"
        );
        let h = req("CONNECT a:443 HTTP/1.1\r\n\r\n").unwrap().unwrap();
        assert!(h.meta.upgrade && h.meta.connect && !h.idempotent);
    }

    fn resp(s: &str, meta: RequestMeta) -> Result<Option<ResponseHead>, FrameError> {
        parse_response(s.as_bytes(), Some(meta), MAX)
    }

    const GET: RequestMeta = RequestMeta {
        head: false,
        connect: false,
        upgrade: false,
    };

    #[test]
    fn response_bodies() {
        let then = |s: &str, m| resp(s, m).unwrap().unwrap().then;
        assert_eq!(
            then("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", GET),
            AfterResponse::Body(Body::Length(3))
        );
        assert_eq!(
            then("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", GET),
            AfterResponse::Done
        );
        assert_eq!(
            then("HTTP/1.1 100 Continue\r\n\r\n", GET),
            AfterResponse::Interim
        );
        assert_eq!(
            then("HTTP/1.1 204 No Content\r\n\r\n", GET),
            AfterResponse::Done
        );
        assert_eq!(
            then(
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                GET
            ),
            AfterResponse::Done
        );
        let head = RequestMeta { head: true, ..GET };
        assert_eq!(
            then("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", head),
            AfterResponse::Done
        );
        assert_eq!(
            then(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n",
                GET
            ),
            AfterResponse::Body(Body::Chunked(Chunk::Size))
        );
        let h = resp("HTTP/1.1 200 OK\r\n\r\n", GET).unwrap().unwrap();
        assert_eq!(
            (h.then, h.close),
            (AfterResponse::Body(Body::UntilClose), true)
        );
        let h = resp("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", GET)
            .unwrap()
            .unwrap();
        assert!(h.close);
        let ws = RequestMeta {
            upgrade: true,
            ..GET
        };
        assert_eq!(
            then("HTTP/1.1 101 Switching Protocols\r\n\r\n", ws),
            AfterResponse::Tunnel
        );
        assert_eq!(
            resp("HTTP/1.1 101 Switching Protocols\r\n\r\n", GET),
            Err(FrameError::BadUpgrade)
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\n\r\n", None, MAX),
            Err(FrameError::Unsolicited)
        );
    }
}
