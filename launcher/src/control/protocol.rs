//! The control socket's protocol: one JSON request per line, one JSON
//! response per line, over a Unix socket (mode 0600).
//!
//! ```text
//! -> {"command":"status"}
//! <- {"ok":true,"snapshot":{...}}
//! -> {"command":"scale","target":"+1","force":false}
//! <- {"ok":true,"message":"scaling from 2 to 3 workers"}
//! -> {"command":"frobnicate"}
//! <- {"ok":false,"error":"unknown command ..."}
//! ```

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::scale::ScaleTarget;
use crate::observe::ClusterSnapshot;

/// The longest request line accepted; longer ones are refused unread.
pub const MAX_REQUEST_BYTES: usize = 4096;

/// A request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum Request {
    /// The cluster snapshot.
    Status,
    /// A rolling reload.
    Reload,
    /// Change the worker count.
    Scale {
        target: ScaleTarget,
        #[serde(default)]
        force: bool,
    },
    /// Graceful shutdown, as SIGTERM.
    Stop,
}

/// A response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<ClusterSnapshot>,
}

impl Response {
    pub fn ok(message: impl Into<String>) -> Response {
        Response {
            ok: true,
            message: Some(message.into()),
            error: None,
            snapshot: None,
        }
    }

    pub fn snapshot(s: ClusterSnapshot) -> Response {
        Response {
            ok: true,
            message: None,
            error: None,
            snapshot: Some(s),
        }
    }

    pub fn error(e: impl Into<String>) -> Response {
        Response {
            ok: false,
            message: None,
            error: Some(e.into()),
            snapshot: None,
        }
    }

    /// One line of JSON, newline-terminated.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self)
            .unwrap_or_else(|_| r#"{"ok":false,"error":"encoding failed"}"#.to_owned());
        s.push('\n');
        s
    }
}

/// A request line that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    #[error("request longer than {MAX_REQUEST_BYTES} bytes")]
    TooLong,
    #[error("not a request: {0}")]
    Malformed(String),
}

/// Parses one request line.
pub fn parse_request(line: &str) -> Result<Request, ProtocolError> {
    if line.len() > MAX_REQUEST_BYTES {
        return Err(ProtocolError::TooLong);
    }
    serde_json::from_str(line.trim()).map_err(|e| ProtocolError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for r in [
            Request::Status,
            Request::Reload,
            Request::Stop,
            Request::Scale {
                target: ScaleTarget::Delta(-1),
                force: true,
            },
        ] {
            let line = serde_json::to_string(&r).unwrap();
            assert_eq!(parse_request(&line), Ok(r));
        }
        assert_eq!(
            parse_request(r#"{"command":"scale","target":"+2"}"#),
            Ok(Request::Scale {
                target: ScaleTarget::Delta(2),
                force: false
            })
        );
    }

    #[test]
    fn refuses_garbage() {
        assert!(matches!(
            parse_request("frobnicate"),
            Err(ProtocolError::Malformed(_))
        ));
        assert!(matches!(
            parse_request(r#"{"command":"frobnicate"}"#),
            Err(ProtocolError::Malformed(_))
        ));
        assert!(matches!(
            parse_request(r#"{"command":"scale","target":"lots"}"#),
            Err(ProtocolError::Malformed(_))
        ));
        assert_eq!(
            parse_request(&"x".repeat(MAX_REQUEST_BYTES + 1)),
            Err(ProtocolError::TooLong)
        );
    }
}
