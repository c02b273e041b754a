//! The client side of `corefit status | reload | scale | stop`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use super::protocol::{Request, Response};

/// The default control socket path, unless `--control-socket` or
/// `COREFIT_CONTROL_SOCKET` says otherwise.
pub fn default_socket_path() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("corefit.sock"),
        _ => PathBuf::from("/tmp/corefit.sock"),
    }
}

/// Talking to a running corefit failed.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot connect to the control socket {path}: {source} (is corefit running, and is this the path it uses?)")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("control socket {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("control socket {path} sent an unreadable response: {detail}")]
    BadResponse { path: PathBuf, detail: String },
}

/// The most of a response that is read (a snapshot of 4096 workers fits).
const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// Sends one request and reads one response, with a timeout.
pub fn send(path: &Path, request: &Request, timeout: Duration) -> Result<Response, ClientError> {
    let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
        path: path.to_owned(),
        source,
    })?;
    exchange(path, stream, request, timeout)
}

/// One request and one response on a connected stream.
fn exchange(
    path: &Path,
    mut stream: UnixStream,
    request: &Request,
    timeout: Duration,
) -> Result<Response, ClientError> {
    let io = |source| ClientError::Io {
        path: path.to_owned(),
        source,
    };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut line = serde_json::to_string(request).map_err(|e| ClientError::BadResponse {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    line.push('\n');
    // A server that refuses us (another user's corefit) answers and closes
    // without reading the request, so the write can fail with EPIPE or
    // ECONNRESET while its answer waits in our receive buffer: read it
    // before reporting the write error.
    let written = stream.write_all(line.as_bytes());
    let mut reply = String::new();
    let read =
        BufReader::new(std::io::Read::take(stream, MAX_RESPONSE_BYTES)).read_line(&mut reply);
    match (written, read) {
        (Ok(()), Err(e)) => return Err(io(e)),
        (Err(e), _) if reply.trim().is_empty() => return Err(io(e)),
        _ => {}
    }
    serde_json::from_str(&reply).map_err(|e| ClientError::BadResponse {
        path: path.to_owned(),
        detail: format!("{e}: {:?}", reply.chars().take(200).collect::<String>()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A server that answers and closes before reading the request (as
    /// corefit does for another user): the client reports its answer, not
    /// the broken pipe its own write then meets.
    #[test]
    fn an_answer_sent_before_the_close_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let stream = UnixStream::connect(&path).unwrap();
        // The server answers and is gone before the client writes a byte.
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"{\"ok\":false,\"error\":\"permission denied\"}\n")
            .unwrap();
        drop(s);
        let r = exchange(&path, stream, &Request::Status, Duration::from_secs(5)).unwrap();
        assert!(!r.ok);
        assert_eq!(r.error.as_deref(), Some("permission denied"));

        // Gone without a word: the error is the write's.
        let stream = UnixStream::connect(&path).unwrap();
        drop(listener.accept().unwrap());
        let e = exchange(&path, stream, &Request::Status, Duration::from_secs(5)).unwrap_err();
        assert!(
            matches!(&e, ClientError::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe),
            "{e}"
        );
    }
}
