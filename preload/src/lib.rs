//! # corefit-preload — share corefit's socket with apps that only `bind()`
//!
//! Loaded into a worker with `LD_PRELOAD` by `corefit --socket inject`.
//! It interposes one libc function, `bind()`:
//!
//! ```text
//!   app: socket() -> fd 17      bind(17, 0.0.0.0:8080)        listen(17)   accept(17)...
//!                                   │ port == COREFIT_INJECT_PORT, TCP?
//!                                   ├─ yes: dup2(COREFIT_INJECT_FD, 17); return 0
//!                                   │       (fd 17 now *is* corefit's listening socket)
//!                                   └─ no:  libc's bind(), untouched
//! ```
//!
//! corefit binds the public port once and hands the listening socket to
//! every worker on `COREFIT_INJECT_FD`; each worker's own `bind()` of that
//! port (IPv4 or IPv6, wildcard or loopback) is turned into that socket, so
//! the kernel balances connections over the workers' `accept()` calls with
//! no proxy hop and no change to the app. `listen()` on the already
//! listening socket only adjusts the backlog; `getsockname()` reports the
//! shared socket's address.
//!
//! While corefit stops a worker, the shim also hands corefit the
//! connections the app closes with a request unread, and it keeps one
//! worker's `shutdown()` of a listener all workers share from reaching the
//! kernel (module `handover`).
//!
//! Caveats: only dynamically linked programs load preloads (corefit refuses
//! static and setuid executables before starting them); the descriptor
//! flags the app asked for (`FD_CLOEXEC`, `O_NONBLOCK`) are applied to the
//! shared socket, whose status flags are common to all workers (every
//! worker runs the same program, so they agree).

mod exec_guard;
mod handover;
mod real;

use std::sync::OnceLock;

use libc::{c_int, c_void, sockaddr, socklen_t};

use real::Real;

/// The inherited listening socket and the port it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub fd: c_int,
    pub port: u16,
}

/// Parses `COREFIT_INJECT_FD` and `COREFIT_INJECT_PORT`. `None` (and libc's
/// plain `bind()` for everything) when either is missing or malformed.
pub fn parse_target(fd: Option<&str>, port: Option<&str>) -> Option<Target> {
    let fd: c_int = fd?.trim().parse().ok().filter(|&f| f >= 0)?;
    let port: u16 = port?.trim().parse().ok().filter(|&p| p > 0)?;
    Some(Target { fd, port })
}

/// What a `bind()` address is, as far as the shim cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindAddr {
    /// 0.0.0.0, ::, 127.0.0.0/8, ::1 or ::ffff:127.x on this port.
    WildcardOrLoopback(u16),
    /// Any other address or family.
    Other,
}

/// Classifies a raw socket address. Pure: takes the bytes the app passed.
pub fn classify(addr: &[u8]) -> BindAddr {
    if addr.len() < 2 {
        return BindAddr::Other;
    }
    let family = u16::from_ne_bytes([addr[0], addr[1]]) as c_int;
    match family {
        libc::AF_INET if addr.len() >= std::mem::size_of::<libc::sockaddr_in>() => {
            let port = u16::from_be_bytes([addr[2], addr[3]]);
            let ip = [addr[4], addr[5], addr[6], addr[7]];
            if ip == [0, 0, 0, 0] || ip[0] == 127 {
                BindAddr::WildcardOrLoopback(port)
            } else {
                BindAddr::Other
            }
        }
        libc::AF_INET6 if addr.len() >= std::mem::size_of::<libc::sockaddr_in6>() => {
            let port = u16::from_be_bytes([addr[2], addr[3]]);
            let ip: [u8; 16] = addr[8..24].try_into().unwrap_or([1; 16]);
            let unspecified = ip == [0; 16];
            let loopback = ip == std::net::Ipv6Addr::LOCALHOST.octets();
            let mapped_loopback =
                ip[..10] == [0; 10] && ip[10..12] == [0xff, 0xff] && ip[12] == 127;
            if unspecified || loopback || mapped_loopback {
                BindAddr::WildcardOrLoopback(port)
            } else {
                BindAddr::Other
            }
        }
        _ => BindAddr::Other,
    }
}

type BindFn = unsafe extern "C" fn(c_int, *const sockaddr, socklen_t) -> c_int;
type ListenFn = unsafe extern "C" fn(c_int, c_int) -> c_int;

/// One socket for every worker (`--shared-sockets one`).
fn shared_by_all() -> bool {
    static ONE: OnceLock<bool> = OnceLock::new();
    *ONE.get_or_init(|| std::env::var("COREFIT_INJECT_SHARED").as_deref() == Ok("one"))
}

/// Runs when the shim is loaded, before the program's `main`.
extern "C" fn at_load() {
    handover::init_from_env();
}

#[used]
#[link_section = ".init_array"]
static AT_LOAD: extern "C" fn() = at_load;

/// The interposed `listen()`: a listen on corefit's port marks this
/// process as the server (see `handover::serving`); libc's listen always.
///
/// # Safety
/// Called by C code with listen(2)'s arguments.
#[no_mangle]
pub unsafe extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    // SAFETY: the C prototype of listen(2).
    static REAL: Real<ListenFn> = unsafe { Real::new(c"listen") };
    let port = handover::port();
    if port != 0 && handover::local_port(fd) == Some(port) {
        handover::serving(fd, false);
    }
    // SAFETY: the caller's arguments, forwarded to libc's listen.
    REAL.forward(|f| unsafe { f(fd, backlog) })
}

fn target() -> Option<Target> {
    static TARGET: OnceLock<Option<Target>> = OnceLock::new();
    *TARGET.get_or_init(|| {
        parse_target(
            std::env::var("COREFIT_INJECT_FD").ok().as_deref(),
            std::env::var("COREFIT_INJECT_PORT").ok().as_deref(),
        )
    })
}

fn real_bind() -> Option<BindFn> {
    // SAFETY: the C prototype of bind(2).
    static REAL: Real<BindFn> = unsafe { Real::new(c"bind") };
    REAL.get()
}

fn is_tcp(fd: c_int) -> bool {
    let mut ty: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as socklen_t;
    // SAFETY: ty and len are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            &mut ty as *mut c_int as *mut c_void,
            &mut len,
        )
    };
    rc == 0 && ty == libc::SOCK_STREAM
}

/// Replaces `fd` with the shared socket, keeping the descriptor flags the
/// app asked for. Returns false when it could not (then libc binds).
fn adopt_shared(fd: c_int, shared: c_int) -> bool {
    // SAFETY: fcntl and dup2 on plain integers have no memory effects;
    // errors are checked.
    unsafe {
        let fd_flags = libc::fcntl(fd, libc::F_GETFD);
        let status = libc::fcntl(fd, libc::F_GETFL);
        if fd_flags < 0 || status < 0 || libc::fcntl(shared, libc::F_GETFD) < 0 {
            return false;
        }
        if libc::dup2(shared, fd) < 0 {
            return false;
        }
        libc::fcntl(fd, libc::F_SETFD, fd_flags);
        libc::fcntl(
            fd,
            libc::F_SETFL,
            status & (libc::O_NONBLOCK | libc::O_ASYNC),
        );
    }
    true
}

/// The interposed `bind()`.
///
/// # Safety
/// Called by C code with the arguments of bind(2): `addr` points to `len`
/// readable bytes (or is null with any length, which libc rejects).
#[no_mangle]
pub unsafe extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    if let Some(t) = target() {
        if !addr.is_null() && fd != t.fd && (len as usize) <= 128 {
            // SAFETY: the caller promises `len` readable bytes at `addr`.
            let bytes = unsafe { std::slice::from_raw_parts(addr as *const u8, len as usize) };
            if classify(bytes) == BindAddr::WildcardOrLoopback(t.port)
                && is_tcp(fd)
                && adopt_shared(fd, t.fd)
            {
                handover::serving(fd, shared_by_all());
                return 0;
            }
        }
    }
    match real_bind() {
        // SAFETY: forwarding the caller's own arguments to libc's bind.
        Some(f) => unsafe { f(fd, addr, len) },
        None => {
            // SAFETY: __errno_location returns this thread's errno.
            unsafe { *libc::__errno_location() = libc::ENOSYS };
            -1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(ip: [u8; 4], port: u16) -> Vec<u8> {
        let mut b = vec![0u8; std::mem::size_of::<libc::sockaddr_in>()];
        b[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        b[2..4].copy_from_slice(&port.to_be_bytes());
        b[4..8].copy_from_slice(&ip);
        b
    }

    fn v6(ip: std::net::Ipv6Addr, port: u16) -> Vec<u8> {
        let mut b = vec![0u8; std::mem::size_of::<libc::sockaddr_in6>()];
        b[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        b[2..4].copy_from_slice(&port.to_be_bytes());
        b[8..24].copy_from_slice(&ip.octets());
        b
    }

    #[test]
    fn classifies_wildcard_and_loopback_of_both_families() {
        assert_eq!(
            classify(&v4([0, 0, 0, 0], 8080)),
            BindAddr::WildcardOrLoopback(8080)
        );
        assert_eq!(
            classify(&v4([127, 0, 0, 1], 8080)),
            BindAddr::WildcardOrLoopback(8080)
        );
        assert_eq!(classify(&v4([10, 0, 0, 1], 8080)), BindAddr::Other);
        assert_eq!(
            classify(&v6("::".parse().unwrap(), 80)),
            BindAddr::WildcardOrLoopback(80)
        );
        assert_eq!(
            classify(&v6("::1".parse().unwrap(), 80)),
            BindAddr::WildcardOrLoopback(80)
        );
        assert_eq!(
            classify(&v6("::ffff:127.0.0.1".parse().unwrap(), 80)),
            BindAddr::WildcardOrLoopback(80)
        );
        assert_eq!(
            classify(&v6("fe80::1".parse().unwrap(), 80)),
            BindAddr::Other
        );
        assert_eq!(classify(&[]), BindAddr::Other);
        assert_eq!(classify(&v4([0, 0, 0, 0], 1)[..6]), BindAddr::Other);
        let mut unix = vec![0u8; 110];
        unix[..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
        assert_eq!(classify(&unix), BindAddr::Other);
    }

    #[test]
    fn target_needs_both_variables() {
        assert_eq!(
            parse_target(Some("3"), Some("8080")),
            Some(Target { fd: 3, port: 8080 })
        );
        assert_eq!(parse_target(None, Some("8080")), None);
        assert_eq!(parse_target(Some("-1"), Some("8080")), None);
        assert_eq!(parse_target(Some("3"), Some("0")), None);
        assert_eq!(parse_target(Some("3"), Some("70000")), None);
        assert_eq!(parse_target(Some("x"), Some("80")), None);
    }
}
