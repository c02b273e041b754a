//! The worker side of corefit's handover (`launcher/src/supervise/net/
//! handover.rs` has the whole picture), and the guard on `shutdown()` of
//! a listener every worker shares.
//!
//! While corefit is stopping this worker (byte 0 of the page mapped from
//! `COREFIT_STOP_FD` is set), a `close()` of a connection accepted on
//! corefit's port that the app has not shut down (an idle keep-alive
//! connection, whose next request may already be unread or on its way)
//! sends the descriptor to corefit over `COREFIT_HANDOVER_FD` first; the
//! app's close then drops only its own reference, so the kernel sends
//! neither a reset nor a FIN, and corefit relays the next request to a
//! live worker (or closes the connection when none comes soon). Node (libuv) closes with `syscall(SYS_close, fd)`, so
//! `syscall` is interposed too, for that one number.
//!
//! Cost while the flag is down: one load of a mapped byte per `close()`.
//! Nothing here allocates, locks or reads the environment after
//! [`init_from_env`], which runs when the shim is loaded. Used by both
//! `inject` and `shared` (where the shim does nothing else).

use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU16, AtomicUsize, Ordering};

use libc::{c_int, c_long, c_void, socklen_t};

use crate::real::{missing, Real};

static STOP_PAGE: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static HANDOVER_FD: AtomicI32 = AtomicI32::new(-1);
static STOP_FD: AtomicI32 = AtomicI32::new(-1);
static PORT: AtomicU16 = AtomicU16::new(0);
/// The inherited listener when every worker shares one (`--shared-sockets
/// one`): its inode, 0 when each worker has its own.
static SHARED_LISTENER_INO: AtomicUsize = AtomicUsize::new(0);

/// Parses a descriptor number from the environment.
pub fn parse_fd(v: Option<&str>) -> Option<c_int> {
    v?.trim().parse().ok().filter(|&f: &c_int| f >= 0)
}

/// Reads the handover variables at load time (the shim's constructor):
/// `COREFIT_HANDOVER_PORT`, `COREFIT_HANDOVER_FD`, `COREFIT_STOP_FD`, and
/// maps the stop flag. The descriptors stay inheritable until this
/// process shows it is the server ([`serving`]): a shell that execs the
/// app must pass them on.
pub fn init_from_env() {
    let port = std::env::var("COREFIT_HANDOVER_PORT")
        .ok()
        .and_then(|p| p.trim().parse::<u16>().ok())
        .filter(|&p| p > 0);
    let stop = parse_fd(std::env::var("COREFIT_STOP_FD").ok().as_deref());
    let channel = parse_fd(std::env::var("COREFIT_HANDOVER_FD").ok().as_deref());
    let (Some(port), Some(stop), Some(channel)) = (port, stop, channel) else {
        return;
    };
    // SAFETY: mmap of one page of a descriptor corefit made (a memfd of a
    // page), read-only and shared; a failure returns MAP_FAILED, checked.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_SHARED,
            stop,
            0,
        )
    };
    if page == libc::MAP_FAILED {
        return;
    }
    PORT.store(port, Ordering::Relaxed);
    STOP_FD.store(stop, Ordering::Relaxed);
    HANDOVER_FD.store(channel, Ordering::Relaxed);
    STOP_PAGE.store(page.cast(), Ordering::Release);
}

/// This process took or listens on corefit's port: it is the server, so
/// the handover descriptors are marked close-on-exec (the app's own
/// children do not inherit them). With one socket for all workers,
/// `listener` is remembered for [`shutdown_is_shared_listener`].
pub fn serving(listener: c_int, shared_by_all: bool) {
    if shared_by_all {
        SHARED_LISTENER_INO.store(inode(listener), Ordering::Relaxed);
    }
    for fd in [
        STOP_FD.load(Ordering::Relaxed),
        HANDOVER_FD.load(Ordering::Relaxed),
    ] {
        if fd >= 0 {
            // SAFETY: fcntl on plain integers; an error leaves the flags.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
}

/// The port corefit hands over connections of (0: handover off).
pub fn port() -> u16 {
    PORT.load(Ordering::Relaxed)
}

/// The local port of socket `fd`, if it is an IPv4 or IPv6 one.
pub fn local_port(fd: c_int) -> Option<u16> {
    let mut addr: libc::sockaddr_storage = unsafe_zeroed();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as socklen_t;
    // SAFETY: getsockname writes at most `len` bytes into `addr`, ours.
    if unsafe {
        libc::getsockname(
            fd,
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    } != 0
    {
        return None;
    }
    let bytes = &addr as *const libc::sockaddr_storage as *const u8;
    // SAFETY: sockaddr_storage is at least 4 bytes; the port of AF_INET
    // and AF_INET6 addresses is bytes 2..4, network order.
    let port = unsafe { u16::from_be_bytes([*bytes.add(2), *bytes.add(3)]) };
    matches!(addr.ss_family as c_int, libc::AF_INET | libc::AF_INET6).then_some(port)
}

fn stopping() -> bool {
    let page = STOP_PAGE.load(Ordering::Acquire);
    // SAFETY: a non-null page is the live read-only mapping made in init
    // and never unmapped; corefit writes byte 0 from another process, so
    // the read is volatile.
    !page.is_null() && unsafe { std::ptr::read_volatile(page) } != 0
}

fn inode(fd: c_int) -> usize {
    // SAFETY: fstat writes a stat struct we own; zeroed is a valid one.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) == 0 {
            st.st_ino as usize
        } else {
            0
        }
    }
}

/// Called before every close of `fd`: hands it to corefit when corefit is
/// stopping this worker and `fd` is a connection on corefit's port that
/// the app did not shut down (an idle keep-alive connection: its next
/// request may be unread, or on its way).
pub fn before_close(fd: c_int) {
    if !stopping() {
        return;
    }
    let channel = HANDOVER_FD.load(Ordering::Relaxed);
    if fd < 0 || channel < 0 || fd == channel || !is_open_connection(fd) {
        return;
    }
    // SAFETY: both descriptors are open for the whole call: `fd` is the
    // one the app is about to close (its close waits for this), `channel`
    // the handover socket inherited at start and never closed.
    let (channel, fd) = unsafe { (BorrowedFd::borrow_raw(channel), BorrowedFd::borrow_raw(fd)) };
    // A failure (corefit gone, channel full) just lets the close happen
    // as usual.
    let _ = corefit_sys::send_fd(channel, fd);
}

/// A TCP connection to corefit's port that is still open both ways on the
/// app's side (ESTABLISHED, or CLOSE_WAIT: the client finished sending).
fn is_open_connection(fd: c_int) -> bool {
    if local_port(fd) != Some(port()) {
        return false;
    }
    let mut info = [0u8; 8];
    let mut info_len = info.len() as socklen_t;
    // SAFETY: getsockopt writes at most `info_len` bytes into `info`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr() as *mut c_void,
            &mut info_len,
        )
    };
    // tcpi_state is the first byte of struct tcp_info.
    const TCP_ESTABLISHED: u8 = 1;
    const TCP_CLOSE_WAIT: u8 = 8;
    rc == 0 && matches!(info[0], TCP_ESTABLISHED | TCP_CLOSE_WAIT)
}

fn unsafe_zeroed<T>() -> T {
    // SAFETY: only used for plain C structs (sockaddr_storage), for which
    // all-zero bytes are a valid value.
    unsafe { std::mem::zeroed() }
}

/// True when `shutdown(fd, ..)` must not reach the kernel: `fd` is the
/// listener every worker shares (one worker shutting it down would stop
/// the others' accepts). Its `close()` or the worker's exit releases it.
pub fn shutdown_is_shared_listener(fd: c_int) -> bool {
    let ino = SHARED_LISTENER_INO.load(Ordering::Relaxed);
    ino != 0 && inode(fd) == ino
}

type CloseFn = unsafe extern "C" fn(c_int) -> c_int;
type SyscallFn = unsafe extern "C" fn(c_long, ...) -> c_long;
type ShutdownFn = unsafe extern "C" fn(c_int, c_int) -> c_int;

/// The interposed `close()`.
///
/// # Safety
/// Called by C code with close(2)'s argument.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    // SAFETY: the C prototype of close(2).
    static REAL: Real<CloseFn> = unsafe { Real::new(c"close") };
    before_close(fd);
    // SAFETY: the caller's argument, forwarded to libc's close.
    REAL.forward(|f| unsafe { f(fd) })
}

/// The interposed `syscall()`: only `SYS_close` is looked at; every call
/// is forwarded with its six argument registers as they were. Declared
/// with fixed arguments: on x86-64 and AArch64 Linux a variadic call
/// passes integer arguments exactly as a fixed one does (registers, then
/// the stack), and glibc's own `syscall` reads all six the same way.
///
/// # Safety
/// Called by C code as syscall(2).
#[no_mangle]
pub unsafe extern "C" fn syscall(
    n: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    // SAFETY: the C prototype of syscall(2), variadic.
    static REAL: Real<SyscallFn> = unsafe { Real::new(c"syscall") };
    if n == libc::SYS_close {
        before_close(a1 as c_int);
    }
    match REAL.get() {
        None => c_long::from(missing()),
        // SAFETY: libc's syscall; the caller's own arguments are passed on
        // unchanged.
        Some(f) => unsafe { f(n, a1, a2, a3, a4, a5, a6) },
    }
}

/// The interposed `shutdown()`: a no-op (success) on the listener all
/// workers share; libc's otherwise.
///
/// # Safety
/// Called by C code with shutdown(2)'s arguments.
#[no_mangle]
pub unsafe extern "C" fn shutdown(fd: c_int, how: c_int) -> c_int {
    // SAFETY: the C prototype of shutdown(2).
    static REAL: Real<ShutdownFn> = unsafe { Real::new(c"shutdown") };
    if shutdown_is_shared_listener(fd) {
        return 0;
    }
    // SAFETY: the caller's arguments, forwarded to libc's shutdown.
    REAL.forward(|f| unsafe { f(fd, how) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_variables_parse_or_are_ignored() {
        assert_eq!(parse_fd(Some("7")), Some(7));
        assert_eq!(parse_fd(Some(" 12 ")), Some(12));
        assert_eq!(parse_fd(Some("-1")), None);
        assert_eq!(parse_fd(Some("x")), None);
        assert_eq!(parse_fd(None), None);
    }

    #[test]
    fn nothing_is_handed_over_while_the_flag_is_down() {
        // No init: no page, so closes are untouched.
        assert!(!stopping());
        assert!(!shutdown_is_shared_listener(0));
        assert_eq!(port(), 0);
    }
}
