//! Sockets corefit opens: the public listener (proxy, shared), the copy of
//! it that workers inherit (shared), and free private ports (proxy).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

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
}

/// Binds and listens on `addr` (SO_REUSEADDR, backlog 1024). Must be called
/// inside the tokio runtime.
pub fn listen(addr: SocketAddr) -> Result<TcpListener, SocketError> {
    let err = |source| SocketError::Listen { addr, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(BACKLOG).map_err(err)
}

/// The shared socket: a listening socket plus a duplicate of it without
/// close-on-exec, which every worker inherits.
#[derive(Debug)]
pub struct SharedSocket {
    /// Kept so the socket stays open across worker restarts.
    listener: Option<StdListener>,
    inheritable: Option<OwnedFd>,
}

impl SharedSocket {
    /// Binds `addr` for sharing. Must be called inside the tokio runtime.
    pub fn bind(addr: SocketAddr) -> Result<SharedSocket, SocketError> {
        let listener = listen(addr)?
            .into_std()
            .map_err(|source| SocketError::Listen { addr, source })?;
        // The workers' accept() calls block in the kernel; corefit never
        // accepts on it, so blocking mode is what they expect.
        listener
            .set_nonblocking(false)
            .map_err(|source| SocketError::Listen { addr, source })?;
        let dup: OwnedFd = listener.try_clone().map_err(SocketError::Inherit)?.into();
        fcntl(dup.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty()))
            .map_err(|e| SocketError::Inherit(e.into()))?;
        Ok(SharedSocket {
            listener: Some(listener),
            inheritable: Some(dup),
        })
    }

    /// The descriptor number a spawned worker inherits, while accepting.
    pub fn inheritable_fd(&self) -> Option<RawFd> {
        self.inheritable.as_ref().map(|fd| fd.as_raw_fd())
    }

    /// Stops handing the socket to new workers and closes corefit's copy of
    /// it (workers still running keep theirs until they exit).
    pub fn stop_accepting(&mut self) {
        self.inheritable = None;
        self.listener = None;
    }
}

/// A loopback port free right now, for a worker's private listener.
pub fn free_loopback_port() -> Result<u16, SocketError> {
    let l = StdListener::bind((IpAddr::V4(Ipv4Addr::LOCALHOST), 0))
        .map_err(SocketError::PrivatePort)?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(SocketError::PrivatePort)
}
