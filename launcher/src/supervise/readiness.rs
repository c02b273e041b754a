//! Telling when a worker is ready: its private port accepts a TCP
//! connection, or it sends `READY=1` to `NOTIFY_SOCKET` (the sd_notify
//! protocol: newline-separated `KEY=VALUE` datagrams on a Unix socket), or
//! a Node worker calls `process.send('ready')` on the IPC channel corefit
//! opened for it (Node's `NODE_CHANNEL_FD` protocol, JSON serialization:
//! one JSON value a line).
//! Each check is a task that reports once, through the event channel, and
//! is aborted when its worker goes away.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::{TcpStream, UnixDatagram};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use super::machine::{Event, WorkerId};

/// Time between connection attempts.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);

/// Connects to `addr` until it accepts, then reports `Ready`.
pub fn probe_port(
    id: WorkerId,
    pid: i32,
    addr: SocketAddr,
    events: UnboundedSender<Event>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Ok(Ok(_conn)) =
                tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr)).await
            {
                let _ = events.send(Event::Ready { id, pid });
                return;
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    })
}

/// True when an sd_notify datagram says `READY=1`.
pub fn says_ready(datagram: &[u8]) -> bool {
    datagram
        .split(|&b| b == b'\n')
        .any(|line| line.trim_ascii() == b"READY=1")
}

/// A bound `NOTIFY_SOCKET` for one worker; its file is removed on drop.
#[derive(Debug)]
pub struct NotifySocket {
    path: PathBuf,
    socket: Option<UnixDatagram>,
}

impl NotifySocket {
    /// Binds `dir/notify-<id>-<seq>.sock`. Must be called in the runtime.
    pub fn bind(dir: &Path, id: WorkerId, seq: u64) -> std::io::Result<NotifySocket> {
        let path = dir.join(format!("notify-{id}-{seq}.sock"));
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path)?;
        Ok(NotifySocket {
            path,
            socket: Some(socket),
        })
    }

    /// The value for the worker's `NOTIFY_SOCKET`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for `READY=1` from worker `id` (started as `pid`).
    pub fn watch(
        mut self,
        id: WorkerId,
        pid: i32,
        events: UnboundedSender<Event>,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            let Some(socket) = self.socket.take() else {
                return;
            };
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf).await {
                if says_ready(&buf[..n]) {
                    let _ = events.send(Event::Ready { id, pid });
                    return;
                }
            }
            drop(self);
        })
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// True when a line from a Node IPC channel is the message `'ready'`.
pub fn ipc_says_ready(line: &str) -> bool {
    line.trim() == "\"ready\""
}

/// A Node IPC channel for one worker: a socket pair; the child's end is
/// passed as `NODE_CHANNEL_FD`.
#[derive(Debug)]
pub struct IpcChannel {
    pub parent: std::os::unix::net::UnixStream,
    pub child: std::os::unix::net::UnixStream,
}

impl IpcChannel {
    pub fn new() -> std::io::Result<IpcChannel> {
        let (parent, child) = std::os::unix::net::UnixStream::pair()?;
        Ok(IpcChannel { parent, child })
    }

    /// Reads the channel until the worker's end closes, reporting `Ready`
    /// on the first `'ready'` message. It keeps reading after that, so a
    /// worker sending more messages never meets a closed channel.
    pub fn watch(
        parent: std::os::unix::net::UnixStream,
        id: WorkerId,
        pid: i32,
        events: UnboundedSender<Event>,
    ) -> std::io::Result<JoinHandle<()>> {
        use tokio::io::AsyncBufReadExt;
        parent.set_nonblocking(true)?;
        let stream = tokio::net::UnixStream::from_std(parent)?;
        Ok(tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stream).lines();
            let mut told = false;
            while let Ok(Some(line)) = lines.next_line().await {
                if !told && ipc_says_ready(&line) {
                    told = true;
                    let _ = events.send(Event::Ready { id, pid });
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_node_ipc_ready() {
        assert!(ipc_says_ready("\"ready\""));
        assert!(ipc_says_ready("\"ready\"\n"));
        assert!(!ipc_says_ready("{\"cmd\":\"NODE_HANDLE\"}"));
        assert!(!ipc_says_ready("ready"));
    }

    #[test]
    fn parses_sd_notify_datagrams() {
        assert!(says_ready(b"READY=1"));
        assert!(says_ready(b"STATUS=warming up\nREADY=1\n"));
        assert!(!says_ready(b"READY=0"));
        assert!(!says_ready(b"STATUS=READY=1"));
        assert!(!says_ready(b""));
    }
}
