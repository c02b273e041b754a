//! Sockets corefit opens: the public listener (proxy), the socket(s)
//! workers inherit (shared, inject), and free private ports (proxy).
//!
//! With a socket per worker (the default), each worker's socket is bound
//! with SO_REUSEPORT but not listening when the worker starts: the kernel
//! adds it to the port's group only when the app calls `listen()`, so a
//! booting worker takes no connection, its `listen()` is its readiness
//! (`SO_ACCEPTCONN`, watched by `readiness::probe_listening`), and when the
//! app closes it or dies the group loses it at once. corefit keeps no copy
//! once the app listens.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

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
    /// One socket for all workers, bound and listening once; it outlives
    /// every worker restart. The kernel gives each connection to whichever
    /// worker accepts first, which is balanced for apps that accept one
    /// connection at a time (gunicorn, uvicorn) but not for Node, whose
    /// event loop takes every pending connection at once. A worker's
    /// readiness cannot be seen on it.
    One,
    /// One socket per worker process, all bound to the port with
    /// SO_REUSEPORT: the kernel spreads connections evenly by hash,
    /// whatever the app does. The socket is bound but not listening when
    /// the worker starts; it joins the port's group when the app calls
    /// `listen()` (which is when the worker is ready), and leaves it when
    /// the app closes it or exits, so no connection waits on a worker that
    /// is booting, stopping or dead.
    PerWorker,
}

/// The socket one worker gets.
#[derive(Debug)]
pub enum WorkerSocket {
    /// `One`: the socket every worker shares; corefit keeps it.
    Shared(RawFd),
    /// `PerWorker`: this worker's own socket. corefit's copy goes to the
    /// readiness check (which drops it once the app listens) or is closed
    /// right after the spawn, so the app's `close()` really closes it.
    Own(OwnedFd),
}

impl WorkerSocket {
    pub fn raw_fd(&self) -> RawFd {
        match self {
            WorkerSocket::Shared(fd) => *fd,
            WorkerSocket::Own(fd) => fd.as_raw_fd(),
        }
    }
}

/// The `shared` and `inject` strategies' listening socket(s), made
/// inheritable only for the duration of a spawn.
#[derive(Debug)]
pub struct SharedSocket {
    addr: SocketAddr,
    kind: SharedSockets,
    /// `PerWorker`: corefit listens on each worker's socket before the
    /// spawn, for programs that take fd 3 as an already listening socket
    /// and never call `listen()` (Go's `net.FileListener`).
    listen_first: bool,
    /// `One`: the socket, until corefit stops accepting.
    one: Option<StdListener>,
    accepting: bool,
}

impl SharedSocket {
    /// Binds `addr` (for `One`, the socket now; for `PerWorker`, a probe
    /// socket that is closed again, so a bad or busy address fails at
    /// start). Must be called inside the tokio runtime.
    pub fn bind(
        addr: SocketAddr,
        kind: SharedSockets,
        listen_first: bool,
    ) -> Result<SharedSocket, SocketError> {
        let one = match kind {
            SharedSockets::One => Some(bind_blocking(addr, false, true)?),
            SharedSockets::PerWorker => {
                bind_blocking(addr, true, false)?;
                None
            }
        };
        Ok(SharedSocket {
            addr,
            kind,
            listen_first,
            one,
            accepting: true,
        })
    }

    /// The socket a new worker gets: the shared one, or a fresh one of
    /// its own.
    pub fn socket_for(&mut self) -> Result<WorkerSocket, SocketError> {
        if !self.accepting {
            return Err(SocketError::Closed);
        }
        match self.kind {
            SharedSockets::One => self
                .one
                .as_ref()
                .map(|l| WorkerSocket::Shared(l.as_raw_fd()))
                .ok_or(SocketError::Closed),
            SharedSockets::PerWorker => {
                let l = bind_blocking(self.addr, true, self.listen_first)?;
                Ok(WorkerSocket::Own(OwnedFd::from(l)))
            }
        }
    }

    /// Closes corefit's copy of the shared socket (workers still running
    /// keep theirs until they exit).
    pub fn stop_accepting(&mut self) {
        self.accepting = false;
        self.one = None;
    }
}

/// A blocking socket bound to `addr` (SO_REUSEADDR, TCP_NODELAY, and
/// SO_REUSEPORT when `reuseport`), listening when `listen`. Workers' accept() calls
/// expect a blocking socket; corefit never accepts on it.
fn bind_blocking(
    addr: SocketAddr,
    reuseport: bool,
    listen: bool,
) -> Result<StdListener, SocketError> {
    use socket2::{Domain, Socket, Type};
    let err = |source| SocketError::Listen { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    if reuseport {
        socket.set_reuse_port(true).map_err(err)?;
    }
    // Accepted connections inherit TCP_NODELAY from the listener. Servers
    // that bind for themselves set it; one handed a socket may not (uvicorn
    // --fd takes it for a Unix socket and leaves Nagle on: each answer
    // then waited ~40 ms for the client's delayed ACK).
    socket.set_tcp_nodelay(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    if listen {
        socket.listen(BACKLOG as i32).map_err(err)?;
    }
    Ok(StdListener::from(OwnedFd::from(socket)))
}

/// Whether the socket `fd` is listening (`SO_ACCEPTCONN`).
pub fn is_listening(fd: &impl AsFd) -> std::io::Result<bool> {
    nix::sys::socket::getsockopt(fd, nix::sys::socket::sockopt::AcceptConn).map_err(Into::into)
}

/// Runs `f` (a spawn) with the close-on-exec flag of each of `fds`
/// cleared, so the child inherits them, and sets it again afterwards.
/// corefit's event loop runs on one thread and nothing else spawns
/// meanwhile, so no other child can inherit them by accident.
pub fn with_inheritable<T>(fds: &[RawFd], f: impl FnOnce() -> T) -> Result<T, SocketError> {
    let set = |flag| {
        fds.iter().try_for_each(|&fd| {
            fcntl(fd, FcntlArg::F_SETFD(flag))
                .map(drop)
                .map_err(|e| SocketError::Inherit(e.into()))
        })
    };
    set(FdFlag::empty())?;
    let out = f();
    set(FdFlag::FD_CLOEXEC)?;
    Ok(out)
}

/// `net.ipv4.tcp_migrate_req` of this network namespace (under `root`,
/// normally `/`): whether the kernel moves the connections queued on a
/// closing listener to another listener of its SO_REUSEPORT group instead
/// of resetting them. `None` when unreadable (kernels before 5.14).
pub fn migrate_req(root: &std::path::Path) -> Option<bool> {
    let text = std::fs::read_to_string(root.join("proc/sys/net/ipv4/tcp_migrate_req")).ok()?;
    Some(text.trim() != "0")
}

/// The log line for a run whose workers each close a listener of their
/// own when they stop, when that resets what is queued on it.
pub fn migrate_req_advice(migrate: Option<bool>) -> Option<&'static str> {
    match migrate {
        Some(true) => None,
        _ => Some(
            "a stopping worker's listener resets the connections still queued on it (a few per reload under load): net.ipv4.tcp_migrate_req is not 1 in this network namespace; set it there to hand them to another worker (docker/podman run --sysctl net.ipv4.tcp_migrate_req=1; Kubernetes: the pod's securityContext.sysctls, once the kubelet allows it with --allowed-unsafe-sysctls)",
        ),
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

#[cfg(test)]
mod migrate_tests {
    use super::*;

    #[test]
    fn migrate_req_is_read_from_the_root_given() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(migrate_req(root.path()), None);
        let dir = root.path().join("proc/sys/net/ipv4");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tcp_migrate_req"), "1\n").unwrap();
        assert_eq!(migrate_req(root.path()), Some(true));
        assert_eq!(migrate_req_advice(Some(true)), None);
        std::fs::write(dir.join("tcp_migrate_req"), "0\n").unwrap();
        assert_eq!(migrate_req(root.path()), Some(false));
        assert!(migrate_req_advice(Some(false))
            .unwrap()
            .contains("--sysctl net.ipv4.tcp_migrate_req=1"));
        assert!(migrate_req_advice(None).is_some());
    }
}
