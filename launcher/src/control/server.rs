//! The control socket's server side: accepts connections on a Unix socket
//! (mode 0600, and only peers with corefit's own uid or root are served),
//! reads one request line, hands it to the supervisor's loop as a
//! [`ControlCommand`] and writes back the reply.
//!
//! Bounded: at most [`MAX_REQUEST_BYTES`] + 1 bytes of a connection are
//! read (a longer line gets an error reply, unread), within
//! [`REQUEST_TIMEOUT`].

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use super::protocol::{parse_request, Request, Response, MAX_REQUEST_BYTES};

/// A request on its way to the supervisor, with where to send the answer.
#[derive(Debug)]
pub struct ControlCommand {
    pub request: Request,
    pub reply: oneshot::Sender<Response>,
}

/// How long a peer may take to send its request, and the supervisor to answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Reload and stop answer when they are accepted, not when they finish.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the control socket: a stale socket file (nobody listening) is
/// replaced; a live one is an error (another corefit uses that path).
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!(
                    "{} is in use by another corefit; pass --control-socket with another path",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves until the task is dropped.
pub async fn serve(listener: UnixListener, commands: mpsc::Sender<ControlCommand>) {
    let own_uid = nix::unistd::Uid::effective().as_raw();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let commands = commands.clone();
        tokio::spawn(async move {
            let _ = handle(stream, commands, own_uid).await;
        });
    }
}

async fn handle(
    mut stream: UnixStream,
    commands: mpsc::Sender<ControlCommand>,
    own_uid: u32,
) -> std::io::Result<()> {
    let allowed = stream
        .peer_cred()
        .is_ok_and(|c| c.uid() == own_uid || c.uid() == 0);
    if !allowed {
        let reply = Response::error("permission denied: only corefit's own user may control it");
        return stream.write_all(reply.to_line().as_bytes()).await;
    }
    let (read, mut write) = stream.split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST_BYTES as u64 + 1));
    let read_line = reader.read_line(&mut line);
    let response = match tokio::time::timeout(REQUEST_TIMEOUT, read_line).await {
        Err(_) => Response::error("no request line within 5 s"),
        Ok(Err(e)) => Response::error(format!("cannot read the request: {e}")),
        Ok(Ok(_)) => match parse_request(&line) {
            Err(e) => Response::error(e.to_string()),
            Ok(request) => {
                let (reply, answer) = oneshot::channel();
                if commands
                    .send(ControlCommand { request, reply })
                    .await
                    .is_err()
                {
                    Response::error("corefit is shutting down")
                } else {
                    match tokio::time::timeout(REPLY_TIMEOUT, answer).await {
                        Ok(Ok(r)) => r,
                        Ok(Err(_)) => Response::error("corefit is shutting down"),
                        Err(_) => Response::error("corefit did not answer within 10 s"),
                    }
                }
            }
        },
    };
    write.write_all(response.to_line().as_bytes()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::client;
    use crate::control::scale::ScaleTarget;

    /// The supervisor is played by a task that answers every command
    /// (the real loop is exercised through the binary in launcher/tests).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_reach_the_supervisor_and_answers_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let listener = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (tx, mut rx) = mpsc::channel::<ControlCommand>(4);
        let server = tokio::spawn(serve(listener, tx));
        let supervisor = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(cmd) = rx.recv().await {
                seen.push(cmd.request.clone());
                let _ = cmd.reply.send(Response::ok(format!("{:?}", cmd.request)));
                if seen.len() == 2 {
                    return seen;
                }
            }
            seen
        });
        let p = path.clone();
        let r = tokio::task::spawn_blocking(move || {
            let a = client::send(&p, &Request::Reload, Duration::from_secs(5)).unwrap();
            let b = client::send(
                &p,
                &Request::Scale {
                    target: ScaleTarget::Delta(1),
                    force: false,
                },
                Duration::from_secs(5),
            )
            .unwrap();
            (a, b)
        })
        .await
        .unwrap();
        assert!(r.0.ok && r.1.ok);
        assert_eq!(supervisor.await.unwrap().len(), 2);

        // A request far over the cap, without a newline: refused after
        // MAX_REQUEST_BYTES + 1 bytes, without waiting for the rest.
        let p = path.clone();
        let huge = tokio::task::spawn_blocking(move || {
            use std::io::{BufRead, Write};
            let mut s = std::os::unix::net::UnixStream::connect(&p).unwrap();
            let reader = s.try_clone().unwrap();
            // The server stops reading at the cap: the rest may not fit.
            let _ = s.write_all(&vec![b'x'; MAX_REQUEST_BYTES * 256]);
            let mut line = String::new();
            std::io::BufReader::new(reader)
                .read_line(&mut line)
                .unwrap();
            line
        })
        .await
        .unwrap();
        assert!(
            huge.contains("\"ok\":false") && huge.contains("longer than 4096"),
            "{huge}"
        );

        // Garbage gets an error line, not a hang.
        let p = path.clone();
        let garbage = tokio::task::spawn_blocking(move || {
            use std::io::{BufRead, Write};
            let mut s = std::os::unix::net::UnixStream::connect(&p).unwrap();
            s.write_all(b"{\"command\":\"explode\"}\n").unwrap();
            let mut line = String::new();
            std::io::BufReader::new(s).read_line(&mut line).unwrap();
            line
        })
        .await
        .unwrap();
        assert!(garbage.contains("\"ok\":false"), "{garbage}");

        // A second corefit on the same path is refused while the first listens.
        assert_eq!(
            bind(&path).unwrap_err().kind(),
            std::io::ErrorKind::AddrInUse
        );
        server.abort();
    }
}
