//! `inject` and `shared` (for a dynamically linked app): connections a
//! stopping worker closes between requests are handed to corefit, which
//! relays the client's next request to a live worker instead of letting
//! the kernel reset it.
//!
//! ```text
//!   client ── keep-alive ──> old worker (told to stop: its stop flag is 1)
//!             GET /next ...  app: close(fd) of an idle connection
//!                             └─ shim: unread bytes, flag set -> sendmsg(SCM_RIGHTS fd)
//!   corefit <── fd ─────────────┘   (the app's close drops only its copy: no FIN)
//!   corefit: connect(public port) -> a live worker; relay both ways until either closes
//! ```
//!
//! Why: on a reload, every framework that closes idle keep-alive
//! connections on shutdown (Node's `server.close()`, uvicorn, ...) races
//! the client's next request on them; the request is already in the
//! socket's receive queue when the app closes it, and the kernel answers
//! it with a reset. The shim (`corefit-preload`) sees that `close()`.
//!
//! Per worker corefit makes a [`Handover`]: a Unix stream pair (the
//! worker's end is `COREFIT_HANDOVER_FD`) and a one-page memfd, the stop
//! flag (`COREFIT_STOP_FD`), which the shim maps read-only; corefit sets
//! byte 0 when it starts stopping the worker while others stay up
//! ([`StopFlag::raise`]). The shim checks that byte on every `close()`:
//! no system call is added while the flag is down.
//!
//! What arrives is a descriptor from the worker: corefit checks it is a
//! connected TCP socket before relaying, and relays raw bytes (the request
//! is parsed by the live worker, as any request from the network).

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use corefit_sys::Received;
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use nix::sys::socket::SockType;
use tokio::io::Interest;
use tokio::task::JoinHandle;

use crate::supervise::report::logs::Logger;

/// The variables the shim reads.
pub const ENV_HANDOVER_FD: &str = "COREFIT_HANDOVER_FD";
pub const ENV_STOP_FD: &str = "COREFIT_STOP_FD";
pub const ENV_HANDOVER_PORT: &str = "COREFIT_HANDOVER_PORT";

/// Size of the stop flag's memfd (one page; only byte 0 is used).
const FLAG_BYTES: i64 = 4096;

/// One worker's handover channel and stop flag, before the spawn.
#[derive(Debug)]
pub struct Handover {
    /// corefit's end: connections arrive here.
    pub parent: std::os::unix::net::UnixStream,
    /// The worker's end (inherited).
    pub child: std::os::unix::net::UnixStream,
    /// The stop flag (inherited; corefit writes it).
    pub flag: OwnedFd,
}

impl Handover {
    pub fn new() -> std::io::Result<Handover> {
        let (parent, child) = std::os::unix::net::UnixStream::pair()?;
        let flag = memfd_create(c"corefit-stop-flag", MemFdCreateFlag::MFD_CLOEXEC)?;
        nix::unistd::ftruncate(&flag, FLAG_BYTES)?;
        Ok(Handover {
            parent,
            child,
            flag,
        })
    }

    /// The worker's environment additions, for connections on `port`.
    pub fn env(&self, port: u16) -> [(String, String); 3] {
        [
            (ENV_HANDOVER_PORT.to_owned(), port.to_string()),
            (
                ENV_HANDOVER_FD.to_owned(),
                self.child.as_raw_fd().to_string(),
            ),
            (ENV_STOP_FD.to_owned(), self.flag.as_raw_fd().to_string()),
        ]
    }

    /// The descriptors the worker inherits.
    pub fn inherited(&self) -> [RawFd; 2] {
        [self.child.as_raw_fd(), self.flag.as_raw_fd()]
    }

    /// After the spawn: closes the worker's end here, keeps the flag, and
    /// relays every connection that arrives to `target` until the worker's
    /// end closes (the worker exited).
    pub fn serve(
        self,
        id: u32,
        target: SocketAddr,
        logger: Logger,
    ) -> std::io::Result<(StopFlag, JoinHandle<()>)> {
        let Handover {
            parent,
            child,
            flag,
        } = self;
        drop(child);
        parent.set_nonblocking(true)?;
        let parent = tokio::net::UnixStream::from_std(parent)?;
        let target = loopback_of(target);
        let task = tokio::spawn(async move {
            loop {
                if parent.readable().await.is_err() {
                    return;
                }
                match parent.try_io(Interest::READABLE, || corefit_sys::recv_fd(parent.as_fd())) {
                    Ok(Received::Fd(fd)) => match as_connection(fd) {
                        Some(conn) => {
                            tokio::spawn(relay(conn, target));
                        }
                        None => logger.warn(&format!(
                            "worker {id}: sent a descriptor that is not a connected TCP socket on its handover channel; closed it"
                        )),
                    },
                    Ok(Received::Nothing) => {}
                    Ok(Received::Closed) => return,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
        });
        Ok((StopFlag(std::fs::File::from(flag)), task))
    }
}

/// corefit's side of a worker's stop flag.
#[derive(Debug)]
pub struct StopFlag(std::fs::File);

impl StopFlag {
    /// Tells the worker's shim that corefit is stopping it while other
    /// workers go on: connections it closes with a request unread come to
    /// corefit.
    pub fn raise(&self) {
        use std::os::unix::fs::FileExt;
        let _ = self.0.write_at(&[1], 0).and_then(|_| (&self.0).flush());
    }
}

/// A connected TCP stream, or `None`.
fn as_connection(fd: OwnedFd) -> Option<std::net::TcpStream> {
    use nix::sys::socket::{getsockopt, sockopt};
    if getsockopt(&fd, sockopt::SockType).ok()? != SockType::Stream {
        return None;
    }
    let stream = std::net::TcpStream::from(fd);
    stream.peer_addr().ok()?;
    stream.set_nonblocking(true).ok()?;
    Some(stream)
}

/// How long a handed-over connection with nothing unread is held for the
/// client's next request before corefit closes it. Long enough for a
/// client busy elsewhere (a loaded machine) to send it; it bounds the delay
/// a client reading a response to the connection's end sees during a
/// reload (the shim cannot tell such a response from a keep-alive one).
const HOLD: Duration = Duration::from_millis(500);

/// Relays `conn` to a live worker through the public port until either
/// side closes, if the client sends something within [`HOLD`]. The
/// worker's own keep-alive timeout bounds an idle relay.
async fn relay(conn: std::net::TcpStream, target: SocketAddr) {
    let Ok(mut client) = tokio::net::TcpStream::from_std(conn) else {
        return;
    };
    let mut probe = [0u8; 1];
    match tokio::time::timeout(HOLD, client.peek(&mut probe)).await {
        Ok(Ok(1..)) => {}
        // End of stream, an error, or nothing in time: close it, as the
        // app meant to.
        _ => return,
    }
    let Ok(mut worker) = tokio::net::TcpStream::connect(target).await else {
        return;
    };
    let _ = worker.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut worker).await;
}

/// The public address as a place to connect to: a wildcard becomes the
/// loopback address of its family.
fn loopback_of(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_become_loopback() {
        let v4: SocketAddr = "0.0.0.0:80".parse().unwrap();
        let v6: SocketAddr = "[::]:80".parse().unwrap();
        let lan: SocketAddr = "10.0.0.1:80".parse().unwrap();
        assert_eq!(loopback_of(v4), "127.0.0.1:80".parse().unwrap());
        assert_eq!(loopback_of(v6), "[::1]:80".parse().unwrap());
        assert_eq!(loopback_of(lan), lan);
    }
}
