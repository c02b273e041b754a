//! Where a message body ends: a length, or chunked coding (RFC 9112 §7.1),
//! walked piece by piece over whatever bytes have arrived. Pure.
//!
//! Chunk metadata (size lines, the CRLF after each chunk, trailers) is
//! checked strictly: a bare LF, a control character in an extension, an
//! empty or over-long size line are framing errors, never guessed at, so
//! the proxy and the worker can never disagree on where a body ends.

use super::head::FrameError;

/// Longest chunk-size line (with its extensions) accepted.
pub const MAX_CHUNK_LINE: usize = 4096;
/// Largest trailer section accepted.
pub const MAX_TRAILERS: usize = 16 * 1024;

/// The rest of one message body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// This many bytes remain.
    Length(u64),
    /// Chunked coding, at this point.
    Chunked(Chunk),
    /// Until the sender closes (responses only).
    UntilClose,
}

/// Where in a chunked body the next byte is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// A chunk-size line.
    Size,
    /// Chunk data, this many bytes left.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// The trailer section after the last chunk.
    Trailers,
}

/// One piece of body at the front of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub len: usize,
    /// This piece ends the body.
    pub last: bool,
}

impl Body {
    /// The next piece at the front of `buf`, `None` when more bytes are
    /// needed to know. Advances past the piece.
    pub fn next(&mut self, buf: &[u8]) -> Result<Option<Piece>, FrameError> {
        if buf.is_empty() {
            return Ok(None);
        }
        match self {
            Body::UntilClose => Ok(Some(Piece {
                len: buf.len(),
                last: false,
            })),
            Body::Length(rest) => {
                let len = (*rest).min(buf.len() as u64);
                *rest -= len;
                Ok(Some(Piece {
                    len: len as usize,
                    last: *rest == 0,
                }))
            }
            Body::Chunked(state) => chunk_next(state, buf),
        }
    }
}

fn chunk_next(state: &mut Chunk, buf: &[u8]) -> Result<Option<Piece>, FrameError> {
    match *state {
        Chunk::Size => {
            let Some(size_line) = size_line(buf)? else {
                return Ok(None);
            };
            let (len, size) = size_line;
            *state = if size == 0 {
                Chunk::Trailers
            } else {
                Chunk::Data(size)
            };
            Ok(Some(Piece { len, last: false }))
        }
        Chunk::Data(rest) => {
            let len = rest.min(buf.len() as u64);
            *state = if len == rest {
                Chunk::DataEnd
            } else {
                Chunk::Data(rest - len)
            };
            Ok(Some(Piece {
                len: len as usize,
                last: false,
            }))
        }
        Chunk::DataEnd => match buf {
            [b'\r', b'\n', ..] => {
                *state = Chunk::Size;
                Ok(Some(Piece {
                    len: 2,
                    last: false,
                }))
            }
            [b'\r'] => Ok(None),
            _ => Err(FrameError::BadChunk),
        },
        Chunk::Trailers => {
            if buf.starts_with(b"\r\n") {
                return Ok(Some(Piece { len: 2, last: true }));
            }
            if buf == b"\r" {
                return Ok(None);
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            match httparse::parse_headers(buf, &mut headers) {
                Ok(httparse::Status::Complete((len, _))) => {
                    super::head::reject_bare_lf(&buf[..len])?;
                    Ok(Some(Piece { len, last: true }))
                }
                Ok(httparse::Status::Partial) if buf.len() <= MAX_TRAILERS => Ok(None),
                _ => Err(FrameError::BadChunk),
            }
        }
    }
}

/// A complete chunk-size line at the front of `buf`: its length and the
/// size it gives.
fn size_line(buf: &[u8]) -> Result<Option<(usize, u64)>, FrameError> {
    let Some(lf) = buf.iter().take(MAX_CHUNK_LINE).position(|&b| b == b'\n') else {
        return if buf.len() >= MAX_CHUNK_LINE {
            Err(FrameError::BadChunk)
        } else {
            Ok(None)
        };
    };
    let line = &buf[..=lf];
    // At least one hex digit first; CRLF at the end; no other control
    // character (HTAB aside) anywhere in between.
    let strict = line.first().is_some_and(u8::is_ascii_hexdigit)
        && lf >= 1
        && line[lf - 1] == b'\r'
        && line[..lf - 1]
            .iter()
            .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f));
    if !strict {
        return Err(FrameError::BadChunk);
    }
    match httparse::parse_chunk_size(line) {
        Ok(httparse::Status::Complete((len, size))) if len == line.len() => Ok(Some((len, size))),
        _ => Err(FrameError::BadChunk),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; returns the pieces' lengths.
    fn walk(mut body: Body, input: &[u8], step: usize) -> Result<(Vec<usize>, usize), FrameError> {
        let mut pieces = Vec::new();
        let mut at = 0;
        let mut avail = 0;
        loop {
            match body.next(&input[at..avail])? {
                Some(p) => {
                    pieces.push(p.len);
                    at += p.len;
                    if p.last {
                        return Ok((pieces, at));
                    }
                }
                None if avail == input.len() => return Ok((pieces, at)),
                None => avail = (avail + step).min(input.len()),
            }
        }
    }

    #[test]
    fn chunked_ends_where_it_ends_however_it_arrives() {
        let body = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\nGET /next HTTP/1.1\r\n";
        let end = body.len() - b"GET /next HTTP/1.1\r\n".len();
        for step in 1..body.len() {
            let (_, consumed) = walk(Body::Chunked(Chunk::Size), body, step).unwrap();
            assert_eq!(consumed, end, "step {step}");
        }
    }

    #[test]
    fn length_stops_at_its_length() {
        let (pieces, consumed) = walk(Body::Length(5), b"hello GET /", 3).unwrap();
        assert_eq!(consumed, 5);
        assert_eq!(pieces, vec![3, 2]);
    }

    #[test]
    fn strict_chunk_metadata() {
        for bad in [
            &b"\r\n"[..],
            b"5\nhello\r\n",
            b"5;a\nb\r\nhello\r\n",
            b"zz\r\n",
            b"5\r\nhelloXX",
            b"1ffffffffffffffff\r\n",
            b"5;a\x01\r\n",
        ] {
            let r = walk(Body::Chunked(Chunk::Size), bad, 1);
            assert_eq!(
                r,
                Err(FrameError::BadChunk),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = [b"5;".as_slice(), &vec![b'a'; MAX_CHUNK_LINE]].concat();
        assert_eq!(
            walk(Body::Chunked(Chunk::Size), &long, 4096),
            Err(FrameError::BadChunk)
        );
    }

    #[test]
    fn until_close_never_ends() {
        let mut b = Body::UntilClose;
        assert_eq!(
            b.next(b"abc").unwrap(),
            Some(Piece {
                len: 3,
                last: false
            })
        );
        assert_eq!(b.next(b"").unwrap(), None);
    }
}
