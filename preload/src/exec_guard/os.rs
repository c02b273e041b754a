//! The exec guard's few system calls, allocation-free: files read with
//! `pread`, paths in stack buffers, `fstat`, descriptor flags, and whether
//! an exec would raise privileges (so the loader drops `LD_PRELOAD`).

use libc::{c_char, c_int};

use super::elf::ReadAt;

/// An open file read with `pread`.
pub(super) struct Fd(pub(super) c_int);

impl ReadAt for Fd {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> usize {
        let Ok(offset) = libc::off_t::try_from(offset) else {
            return 0;
        };
        loop {
            // SAFETY: buf is valid for writes of buf.len() bytes.
            let n = unsafe { libc::pread(self.0, buf.as_mut_ptr().cast(), buf.len(), offset) };
            if n >= 0 {
                return n as usize;
            }
            if errno() != libc::EINTR {
                return 0;
            }
        }
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor was opened by `open_file` and is ours.
        unsafe { libc::close(self.0) };
    }
}

pub(super) fn errno() -> c_int {
    // SAFETY: __errno_location returns this thread's errno.
    unsafe { *libc::__errno_location() }
}

pub(super) fn set_errno(e: c_int) {
    // SAFETY: __errno_location returns this thread's errno.
    unsafe { *libc::__errno_location() = e };
}

/// A NUL-terminated path in a stack buffer of `N` bytes.
pub(super) struct CPath<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> CPath<N> {
    pub(super) fn new() -> Self {
        CPath {
            bytes: [0; N],
            len: 0,
        }
    }

    /// Sets the path to the concatenation of `parts`; false if too long
    /// or if it holds a NUL.
    pub(super) fn set(&mut self, parts: &[&[u8]]) -> bool {
        self.len = 0;
        for p in parts {
            if p.contains(&0) || self.len + p.len() >= N {
                return false;
            }
            self.bytes[self.len..self.len + p.len()].copy_from_slice(p);
            self.len += p.len();
        }
        self.bytes[self.len] = 0;
        true
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    pub(super) fn as_ptr(&self) -> *const c_char {
        self.bytes.as_ptr().cast()
    }
}

/// A `#!` interpreter's path (the kernel reads 256 bytes of the line).
pub(super) type Interpreter = CPath<258>;

/// Opens a regular file for reading; never blocks (a FIFO or a device is
/// not a program the guard reads: the kernel judges those).
pub(super) fn open_file(path: *const c_char) -> Option<Fd> {
    let flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
    // SAFETY: path is NUL-terminated (a caller's C string or a CPath).
    let fd = unsafe { libc::open(path, flags) };
    let file = (fd >= 0).then_some(Fd(fd))?;
    fstat(file.0)
        .is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG)
        .then_some(file)
}

pub(super) fn fstat(fd: c_int) -> Option<libc::stat> {
    // SAFETY: an all-zero stat is a valid value; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is valid for writes.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st)
}

/// Whether exec-ing this file runs it with more privileges than the caller
/// (setuid/setgid to someone else), so the loader drops `LD_PRELOAD`; not
/// when `no_new_privs` is set or the file system is mounted `nosuid`.
pub(super) fn secure_exec(fd: c_int) -> bool {
    let Some(st) = fstat(fd) else {
        return false;
    };
    // SAFETY: getuid and getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let setuid = st.st_mode & libc::S_ISUID != 0 && st.st_uid != uid;
    let setgid = st.st_mode & libc::S_ISGID != 0 && st.st_gid != gid;
    if !(setuid || setgid) {
        return false;
    }
    // SAFETY: PR_GET_NO_NEW_PRIVS takes no pointers.
    let nnp = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) } == 1;
    // SAFETY: an all-zero statvfs is a valid value; fstatvfs fills it.
    let mut vfs: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: vfs is valid for writes.
    let nosuid = unsafe { libc::fstatvfs(fd, &mut vfs) } == 0 && vfs.f_flag & libc::ST_NOSUID != 0;
    !nnp && !nosuid
}

/// Whether descriptor `fd` is a socket that survives exec.
pub(super) fn survives_exec(fd: c_int) -> bool {
    // SAFETY: F_GETFD on any integer has no memory effects.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    flags >= 0
        && flags & libc::FD_CLOEXEC == 0
        && fstat(fd).is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFSOCK)
}

/// Whether another descriptor refers to the same socket as `fd`: the app
/// bound the port (the shim made its socket a dup of the shared one), so
/// what it execs now is a helper, not the server.
pub(super) fn already_serving(fd: c_int) -> bool {
    let Some(shared) = fstat(fd) else {
        return false;
    };
    (0..super::MAX_FDS_SCANNED)
        .filter(|&other| other != fd)
        .any(|other| {
            fstat(other).is_some_and(|st| st.st_dev == shared.st_dev && st.st_ino == shared.st_ino)
        })
}

pub(super) fn is_regular<const N: usize>(path: &CPath<N>) -> bool {
    // SAFETY: an all-zero stat is a valid value; stat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: path is NUL-terminated; st is valid for writes.
    (unsafe { libc::stat(path.as_ptr(), &mut st) }) == 0
        && st.st_mode & libc::S_IFMT == libc::S_IFREG
}
