//! # corefit-sys — the launcher's calls into the C library
//!
//! The launcher forbids `unsafe`; the few C library calls it needs that no
//! safe wrapper offers live here, one function each, with the reason each
//! `unsafe` block is sound.
//!
//! - [`trim_heap`]: give freed heap memory back to the kernel. glibc's
//!   allocator keeps what a burst of proxied connections freed (5,000
//!   connections left corefit at ~19 MiB after they closed, against 4 MiB
//!   idle; `malloc_trim(0)` brought it back to 4.2 MiB). musl's allocator
//!   returns memory by itself: there it does nothing.
//! - [`recv_fd`]: receive one descriptor sent with `SCM_RIGHTS` and own
//!   it (`inject`'s handover of connections a stopping worker closes).
//! - [`send_fd`]: send one descriptor so, without allocating: the
//!   preload shim (`corefit-preload`) hands connections over with it.
//!
//! Also a dependency of the shim, which is loaded into every app: this
//! crate exports no `#[no_mangle]` symbol, registers no constructor and
//! keeps no global state; what the shim calls does not allocate.

/// Returns freed heap pages to the kernel (glibc's `malloc_trim(0)`).
/// True when memory was released. A no-op returning false elsewhere.
pub fn trim_heap() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes a plain size (0: keep no padding),
        // touches only the allocator's own state under its own lock, and
        // is safe to call at any time from any thread (glibc manual,
        // "Memory Allocation Tunables"; MT-Safe in malloc_trim(3)).
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// What one `recvmsg` on a Unix socket brought.
#[derive(Debug)]
pub enum Received {
    /// A message carrying a descriptor (the first; any others are closed).
    Fd(std::os::fd::OwnedFd),
    /// A message without a descriptor.
    Nothing,
    /// End of stream: the other end closed.
    Closed,
}

/// Receives one message of at most one byte from the Unix socket `sock`,
/// without blocking, and takes ownership of the descriptor it carries
/// (close-on-exec). `WouldBlock` when nothing is waiting.
pub fn recv_fd(sock: std::os::fd::BorrowedFd<'_>) -> std::io::Result<Received> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: byte.len(),
    };
    // Room for four descriptors, so a sender passing more cannot make the
    // kernel drop the message's rights silently (extras are closed below).
    // SAFETY: CMSG_SPACE is a pure computation on a size.
    let space = unsafe { libc::CMSG_SPACE((4 * std::mem::size_of::<libc::c_int>()) as u32) };
    let mut control = vec![0u8; space as usize];
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len() as _;
    // SAFETY: msg points at live buffers (iov -> byte, control) that
    // outlive the call, with their true lengths.
    let n = unsafe {
        libc::recvmsg(
            sock.as_raw_fd(),
            &mut msg,
            libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: the CMSG_* walkers read the header the kernel just filled,
    // within msg_controllen; each SCM_RIGHTS payload is an array of ints
    // (read unaligned, as the buffer is a byte vector).
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let len = (*cmsg).cmsg_len as usize - (data as usize - cmsg as usize);
                for i in 0..len / std::mem::size_of::<libc::c_int>() {
                    let raw = std::ptr::read_unaligned(data.cast::<libc::c_int>().add(i));
                    // SAFETY: the kernel installed `raw` in this process
                    // for this message; nothing else knows it, so owning
                    // (and closing) it here is sound.
                    fds.push(OwnedFd::from_raw_fd(raw));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    let first = fds.into_iter().next();
    Ok(match (n, first) {
        (_, Some(fd)) => Received::Fd(fd),
        (0, None) => Received::Closed,
        _ => Received::Nothing,
    })
}

/// Sends one byte carrying the descriptor `fd` (`SCM_RIGHTS`) on the Unix
/// socket `sock`, without blocking and without SIGPIPE. Allocates nothing
/// (the preload shim calls it inside an app's `close()`).
pub fn send_fd(
    sock: std::os::fd::BorrowedFd<'_>,
    fd: std::os::fd::BorrowedFd<'_>,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut byte = [b'c'];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: byte.len(),
    };
    // 24 bytes: CMSG_SPACE(sizeof(int)) on 64-bit Linux; checked below.
    let mut control = [0u64; 3];
    // SAFETY: CMSG_SPACE is a pure computation on a size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    if space > std::mem::size_of_val(&control) {
        return Err(std::io::Error::from(std::io::ErrorKind::Unsupported));
    }
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: one SCM_RIGHTS header and its int written with the CMSG
    // macros inside `control`, which is at least CMSG_SPACE(sizeof(int))
    // bytes (checked above) and aligned for a cmsghdr (u64s); msg points at
    // live buffers (iov -> byte, control) that outlive the sendmsg call.
    let n = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fd.as_raw_fd());
        libc::sendmsg(
            sock.as_raw_fd(),
            &msg,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_arrive_owned_and_closed_ends_are_seen() {
        use std::io::Write;
        use std::os::fd::AsFd;
        use std::os::unix::net::UnixDatagram;
        let (a, b) = UnixDatagram::pair().unwrap();
        assert!(matches!(
            recv_fd(b.as_fd()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        ));
        // A message with a descriptor: a pipe's write end.
        let (r, w) = std::io::pipe().unwrap();
        send_fd(a.as_fd(), w.as_fd()).unwrap();
        drop(w);
        let Received::Fd(fd) = recv_fd(b.as_fd()).unwrap() else {
            panic!("no descriptor arrived");
        };
        let mut w = std::fs::File::from(fd);
        w.write_all(b"x").unwrap();
        drop(w);
        let mut got = String::new();
        std::io::Read::read_to_string(&mut { r }, &mut got).unwrap();
        assert_eq!(got, "x");
        a.send(b"y").unwrap();
        assert!(matches!(recv_fd(b.as_fd()).unwrap(), Received::Nothing));
    }

    #[test]
    fn trim_after_freeing_releases_memory_on_glibc() {
        // Many small blocks freed: glibc keeps them until trimmed.
        let blocks: Vec<Vec<u8>> = (0..20_000).map(|i| vec![i as u8; 3000]).collect();
        drop(blocks);
        let released = trim_heap();
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(
                released,
                "malloc_trim released nothing after 60 MB were freed"
            );
        } else {
            assert!(!released);
        }
    }
}
