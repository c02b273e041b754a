//! Telling when a worker is ready: its private port accepts a TCP
//! connection, or its own shared socket starts listening (the app called
//! `listen()` on it: `SO_ACCEPTCONN`), or it sends `READY=1` to `NOTIFY_SOCKET` (the sd_notify
//! protocol: newline-separated `KEY=VALUE` datagrams on a Unix socket), or
//! a Node worker calls `process.send('ready')` on the IPC channel corefit
//! opened for it (Node's `NODE_CHANNEL_FD` protocol, JSON serialization:
//! one JSON value a line).
//! Each check is a task that reports once, through the event channel, and
//! is aborted when its worker goes away.
//!
//! What a worker writes is bounded before it is parsed: an sd_notify
//! datagram is read into [`MAX_NOTIFY_DATAGRAM`] bytes (the rest of a longer
//! one is dropped by the kernel), and a Node IPC line longer than
//! [`MAX_IPC_LINE_BYTES`] is skipped as it streams past, never buffered
//! whole. The parsers ([`says_ready`], [`IpcLines`], [`ipc_says_ready`])
//! are pure and fuzzed (`fuzz/fuzz_targets/notify_socket.rs`,
//! `node_ipc.rs`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::{TcpStream, UnixDatagram};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use crate::supervise::machine::{Event, WorkerId};

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

/// Watches a worker's own shared socket (corefit's copy of it) until the
/// app has called `listen()` on it, then reports `Ready` and closes
/// corefit's copy, so that the app's own `close()` later takes the socket
/// out of the port's group at once.
pub fn probe_listening(
    id: WorkerId,
    pid: i32,
    socket: std::os::fd::OwnedFd,
    events: UnboundedSender<Event>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match crate::supervise::net::sockets::is_listening(&socket) {
                Ok(true) => {
                    drop(socket);
                    let _ = events.send(Event::Ready { id, pid });
                    return;
                }
                Ok(false) => {}
                // Cannot happen for a socket corefit made; the ready
                // timeout (and the worker's exit) still bound the wait.
                Err(_) => return,
            }
            tokio::time::sleep(LISTEN_POLL).await;
        }
    })
}

/// Time between looks at a worker's socket: the lag between the app's
/// `listen()` and corefit counting it ready.
const LISTEN_POLL: Duration = Duration::from_millis(5);

/// The largest sd_notify datagram read, as systemd's own notify buffer;
/// a longer datagram is truncated to this by `recv`.
pub const MAX_NOTIFY_DATAGRAM: usize = 4096;

/// True when an sd_notify datagram says `READY=1`: one of its
/// newline-separated lines is exactly `READY=1` (ASCII whitespace around it
/// is allowed). Any bytes are accepted; nothing else is interpreted.
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
            let mut buf = vec![0u8; MAX_NOTIFY_DATAGRAM];
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

/// The longest Node IPC line (one JSON message) looked at. A longer line
/// is skipped whole as it arrives, so a worker sending a huge message, or
/// bytes without a newline, costs corefit at most this much memory. The
/// message corefit waits for, `"ready"`, is 7 bytes; applications' own
/// messages of any size still flow (they are read and dropped).
pub const MAX_IPC_LINE_BYTES: usize = 64 * 1024;

/// True when a line from a Node IPC channel is the message `'ready'`
/// (`process.send('ready')` writes `"ready"` and a newline).
pub fn ipc_says_ready(line: &str) -> bool {
    line.trim() == "\"ready\""
}

/// [`ipc_says_ready`] on raw bytes: a line that is not UTF-8 is not
/// `'ready'` (and does not stop the reading).
pub fn ipc_line_says_ready(line: &[u8]) -> bool {
    std::str::from_utf8(line).is_ok_and(ipc_says_ready)
}

/// Splits a Node IPC byte stream into lines as chunks arrive, holding at
/// most `cap` bytes: a line longer than `cap` (not counting its `\n`) is
/// dropped, and the next line starts after its newline. Lines are handed
/// out without their `\n` (or `\r\n`), as `BufRead::lines` does; the last
/// line, if it has no newline, comes out of [`IpcLines::finish`]. Pure:
/// the reading task feeds it, the fuzzer too.
#[derive(Debug, Clone)]
pub struct IpcLines {
    cap: usize,
    buf: Vec<u8>,
    /// The current line went past `cap`: skip to its newline.
    skipping: bool,
}

impl IpcLines {
    /// A splitter keeping lines of at most `cap` bytes.
    pub fn new(cap: usize) -> IpcLines {
        IpcLines {
            cap,
            buf: Vec::new(),
            skipping: false,
        }
    }

    /// Feeds bytes read from the channel; `line` is called for each
    /// complete line of at most `cap` bytes.
    pub fn push(&mut self, mut bytes: &[u8], mut line: impl FnMut(&[u8])) {
        while !bytes.is_empty() {
            let (part, rest, ended) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &bytes[bytes.len()..], false),
            };
            if !self.skipping {
                if self.buf.len() + part.len() > self.cap {
                    self.skipping = true;
                    self.buf = Vec::new();
                } else {
                    self.buf.extend_from_slice(part);
                }
            }
            if ended {
                if !self.skipping {
                    line(strip_cr(&self.buf));
                }
                self.buf.clear();
                self.skipping = false;
            }
            bytes = rest;
        }
    }

    /// The end of the stream: hands out the last line if it had no
    /// newline (and is not empty or too long).
    pub fn finish(&mut self, mut line: impl FnMut(&[u8])) {
        if !self.skipping && !self.buf.is_empty() {
            line(&self.buf);
        }
        self.buf = Vec::new();
        self.skipping = false;
    }

    /// Bytes held for the line in progress (never more than `cap`).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
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
    /// worker sending more messages never meets a closed channel. Lines
    /// over [`MAX_IPC_LINE_BYTES`] and lines that are not UTF-8 are
    /// skipped.
    pub fn watch(
        parent: std::os::unix::net::UnixStream,
        id: WorkerId,
        pid: i32,
        events: UnboundedSender<Event>,
    ) -> std::io::Result<JoinHandle<()>> {
        use tokio::io::AsyncReadExt;
        parent.set_nonblocking(true)?;
        let mut stream = tokio::net::UnixStream::from_std(parent)?;
        Ok(tokio::spawn(async move {
            let mut lines = IpcLines::new(MAX_IPC_LINE_BYTES);
            let mut chunk = vec![0u8; 8192];
            let mut told = false;
            let mut check = |line: &[u8]| {
                if !told && ipc_line_says_ready(line) {
                    told = true;
                    let _ = events.send(Event::Ready { id, pid });
                }
            };
            while let Ok(n @ 1..) = stream.read(&mut chunk).await {
                lines.push(&chunk[..n], &mut check);
            }
            lines.finish(&mut check);
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
        assert!(ipc_line_says_ready(b"\"ready\"\r"));
        assert!(!ipc_line_says_ready(b"\"ready\"\xff"));
    }

    fn split(cap: usize, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, usize) {
        let mut lines = IpcLines::new(cap);
        let mut out = Vec::new();
        let mut most = 0;
        for c in chunks {
            lines.push(c, |l| out.push(l.to_vec()));
            most = most.max(lines.buffered());
        }
        lines.finish(|l| out.push(l.to_vec()));
        (out, most)
    }

    #[test]
    fn ipc_lines_split_across_chunks_as_buf_read_lines() {
        let (out, _) = split(64, &[b"{\"a\":1}\n\"rea", b"dy\"\r\n\n", b"tail"]);
        assert_eq!(out, [&b"{\"a\":1}"[..], b"\"ready\"", b"", b"tail"]);
        let (out, _) = split(64, &[b"x\n"]);
        assert_eq!(out, [b"x"]);
    }

    /// The cap: a line longer than it is dropped whole, however it is
    /// chunked, and the splitter never holds more than the cap; the line
    /// after it is read normally.
    #[test]
    fn ipc_lines_over_the_cap_are_skipped_without_buffering() {
        let huge = vec![b'x'; 1 << 20];
        let (out, most) = split(16, &[&huge, &huge, b"\n\"ready\"\n"]);
        assert_eq!(out, [b"\"ready\""]);
        assert!(most <= 16, "held {most} bytes");
        let (out, _) = split(7, &[b"\"ready\"\n12345678\n1234567"]);
        assert_eq!(out, [&b"\"ready\""[..], b"1234567"]);
        let (out, _) = split(4, &[b"12345"]);
        assert!(out.is_empty());
    }

    /// Through the real task: a 1 MiB message without a newline, then a
    /// bad UTF-8 line, then `'ready'`: the worker is reported ready.
    #[tokio::test]
    async fn ipc_watch_survives_huge_and_binary_lines() {
        use std::io::Write;
        let IpcChannel { parent, mut child } = IpcChannel::new().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let task = IpcChannel::watch(parent, 3, 42, tx).unwrap();
        let writer = std::thread::spawn(move || {
            child
                .write_all(&vec![b'{'; MAX_IPC_LINE_BYTES * 16])
                .unwrap();
            child.write_all(b"\n\xff\xfe\n\"ready\"\n").unwrap();
            child
        });
        let ev = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(ev, Event::Ready { pid: 42, .. }), "{ev:?}");
        drop(writer.join().unwrap());
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
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
