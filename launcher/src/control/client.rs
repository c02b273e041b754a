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
    let io = |source| ClientError::Io {
        path: path.to_owned(),
        source,
    };
    let mut stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
        path: path.to_owned(),
        source,
    })?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut line = serde_json::to_string(request).map_err(|e| ClientError::BadResponse {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(io)?;
    let mut reply = String::new();
    BufReader::new(std::io::Read::take(stream, MAX_RESPONSE_BYTES))
        .read_line(&mut reply)
        .map_err(io)?;
    serde_json::from_str(&reply).map_err(|e| ClientError::BadResponse {
        path: path.to_owned(),
        detail: format!("{e}: {:?}", reply.chars().take(200).collect::<String>()),
    })
}
