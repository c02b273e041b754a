//! Sockets corefit opens: the public listener (proxy), the socket(s)
//! workers inherit (shared), and free private ports (proxy).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::os::fd::AsRawFd;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use thiserror::Error;
use tokio::net::{TcpListener, TcpSocket};

/// Listen backlog for the public socket.
const BACKLOG: u32 = 1024;

/// A socket corefit could not set up.
#[derive(Debug, Error)]
pub enum SocketError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot find a free loopback port for a worker: {0}")]
    PrivatePort(std::io::Error),
    #[error("cannot make the shared socket inheritable: {0}")]
    Inherit(#[source] std::io::Error),
    #[error("the shared socket is closed (corefit is stopping)")]
    Closed,
}

/// Binds and listens on `addr` (SO_REUSEADDR, backlog 1024). Must be called
/// inside the tokio runtime.
pub fn listen(addr: SocketAddr) -> Result<TcpListener, SocketError> {
    bound(addr, false)?
        .listen(BACKLOG)
        .map_err(|source| SocketError::Listen { addr, source })
}

/// A socket bound to `addr` with SO_REUSEADDR (and SO_REUSEPORT when
/// `reuseport`), not yet listening.
fn bound(addr: SocketAddr, reuseport: bool) -> Result<TcpSocket, SocketError> {
    let err = |source| SocketError::Listen { addr, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    if reuseport {
        socket.set_reuseport(true).map_err(err)?;
    }
    socket.bind(addr).map_err(err)?;
    Ok(socket)
}

/// How many sockets `shared` mode binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SharedSockets {
    /// One socket for all workers, bound once; it outlives every worker
    /// restart. The kernel gives each connection to whichever worker
    /// accepts first, which is balanced for apps that accept one
    /// connection at a time (gunicorn, uvicorn) but not for Node, whose
    /// event loop takes every pending connection at once.
    One,
    /// One socket per worker, all bound to the port with SO_REUSEPORT: the
    /// kernel spreads connections evenly by hash, whatever the app does.
    /// A worker's socket closes when it exits, so new connections go to
    /// the others while it restarts.
    PerWorker,
}

/// The `shared` strategy's listening socket(s), made inheritable only for
/// the duration of a spawn.
#[derive(Debug)]
pub struct SharedSocket {
    addr: SocketAddr,
    kind: SharedSockets,
    /// `One`: slot 0 for everyone. `PerWorker`: slot per worker id.
    slots: Vec<Option<StdListener>>,
    accepting: bool,
}

impl SharedSocket {
    /// Binds `addr` (for `One`, now; for `PerWorker`, worker 0's socket
    /// now so a bad address fails at start). Must be called inside the
    /// tokio runtime.
    pub fn bind(
        addr: SocketAddr,
        kind: SharedSockets,
        workers: usize,
    ) -> Result<SharedSocket, SocketError> {
        let mut s = SharedSocket {
            addr,
            kind,
            slots: (0..workers.max(1)).map(|_| None).collect(),
            accepting: true,
        };
        s.socket_for(0)?;
        Ok(s)
    }

    /// The listening socket worker `id` gets (bound now if needed).
    pub fn socket_for(&mut self, id: usize) -> Result<&StdListener, SocketError> {
        if !self.accepting {
            return Err(SocketError::Closed);
        }
        let slot = match self.kind {
            SharedSockets::One => 0,
            SharedSockets::PerWorker => id,
        };
        if slot >= self.slots.len() {
            self.slots.resize_with(slot + 1, || None);
        }
        if self.slots[slot].is_none() {
            let listener = bind_blocking(self.addr, self.kind == SharedSockets::PerWorker)?;
            self.slots[slot] = Some(listener);
        }
        self.slots[slot].as_ref().ok_or(SocketError::Closed)
    }

    /// Worker `id` exited: with `PerWorker`, its socket is closed too, so
    /// the kernel stops sending it connections.
    pub fn worker_exited(&mut self, id: usize) {
        if self.kind == SharedSockets::PerWorker {
            if let Some(slot) = self.slots.get_mut(id) {
                *slot = None;
            }
        }
    }

    /// Closes corefit's copies (workers still running keep theirs until
    /// they exit).
    pub fn stop_accepting(&mut self) {
        self.accepting = false;
        self.slots.iter_mut().for_each(|s| *s = None);
    }
}

/// A blocking listening socket (workers' accept() calls expect that; corefit
/// never accepts on it).
fn bind_blocking(addr: SocketAddr, reuseport: bool) -> Result<StdListener, SocketError> {
    let err = |source| SocketError::Listen { addr, source };
    let listener = bound(addr, reuseport)?
        .listen(BACKLOG)
        .map_err(err)?
        .into_std()
        .map_err(err)?;
    listener.set_nonblocking(false).map_err(err)?;
    Ok(listener)
}

/// Runs `f` (a spawn) with `fd`'s close-on-exec flag cleared, so the child
/// inherits it, and sets it again afterwards. corefit's event loop runs on
/// one thread and nothing else spawns meanwhile, so no other child can
/// inherit it by accident.
pub fn with_inheritable<T>(fd: &impl AsRawFd, f: impl FnOnce() -> T) -> Result<T, SocketError> {
    let raw = fd.as_raw_fd();
    fcntl(raw, FcntlArg::F_SETFD(FdFlag::empty())).map_err(|e| SocketError::Inherit(e.into()))?;
    let out = f();
    fcntl(raw, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map_err(|e| SocketError::Inherit(e.into()))?;
    Ok(out)
}

/// A loopback port free right now, for a worker's private listener.
pub fn free_loopback_port() -> Result<u16, SocketError> {
    let l = StdListener::bind((IpAddr::V4(Ipv4Addr::LOCALHOST), 0))
        .map_err(SocketError::PrivatePort)?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(SocketError::PrivatePort)
}
