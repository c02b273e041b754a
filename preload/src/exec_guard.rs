//! # The exec guard: no worker starts that cannot share the port
//!
//! `corefit --socket inject` inspects the command before it starts workers
//! and refuses programs that would never take the shared socket (static,
//! setuid, Go). What it cannot see is what a shell or a script execs:
//! `sh -c "exec ./goapp"` passes (sh loads the shim), then `./goapp` binds
//! the port itself, fails with `EADDRINUSE`, and every worker restarts.
//!
//! So the shim interposes the exec family libc exports and the programs
//! that start apps call (`execve`: dash, bash, Python; `execv`: Python;
//! `execvp`: env, Node; `execvpe`; `fexecve`):
//!
//! ```text
//!   execve(path, argv, envp)
//!     │ envp carries COREFIT_INJECT_FD, and that descriptor (the shared
//!     │ socket) survives the exec?                       no ──> libc's execve
//!     │ follow #! (4 deep); the program is Go, static, or a setuid/setgid
//!     │ one the loader would not preload into?           no ──> libc's execve
//!     │ this process already serves the socket (another descriptor is a
//!     │ dup of it: the app bound, then runs a helper)?  yes ──> libc's execve
//!     └─> one line on stderr naming the program and the strategies that
//!         work; the exec fails with EPERM (a shell's exec then exits 126)
//! ```
//!
//! A guarded exec costs a scan of the environment and one `fcntl`; only
//! an exec that keeps the shared socket reads the program's headers
//! ([`elf`]: a few hundred bytes, no allocation, safe in a `vfork` child).
//!
//! Not covered: `execl*` (variadic, and they call libc's internal execve),
//! `posix_spawn` (a new process, not the worker itself), and programs that
//! clear the environment or close the socket before they exec (they bind
//! the port on their own and fail as they would anywhere).

mod elf;
mod interpose;
mod os;

use libc::{c_char, c_int};

pub use elf::{elf_facts, shebang, ElfFacts, ReadAt};
#[cfg(test)]
use os::errno;
use os::{already_serving, is_regular, open_file, secure_exec, set_errno, survives_exec};
use os::{CPath, Interpreter};

/// The variable that names the shared socket's descriptor.
const ENV_FD: &[u8] = b"COREFIT_INJECT_FD=";

/// The strategies that serve what `inject` cannot (as the launcher says).
const OTHER_STRATEGIES: &str = "use --socket proxy (works with every app), --socket shared if the app serves an inherited socket (LISTEN_FDS / fd 3), or --socket reuseport if it binds PORT with SO_REUSEPORT";

/// `#!` levels followed (the kernel's own limit is 4 interpreters deep).
const MAX_SCRIPT_DEPTH: usize = 4;

/// The longest path handled; a longer one is left to the kernel.
const PATH_MAX: usize = 4096;

/// Descriptors examined when looking for a dup of the shared socket.
const MAX_FDS_SCANNED: c_int = 4096;

/// Why a program cannot take the shared socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Go,
    Static,
    Setuid,
}

impl Refusal {
    fn reason(self) -> &'static str {
        match self {
            Refusal::Go => "it is a Go program, and Go binds its sockets with raw system calls, not through libc's bind(), so the preload shim never sees them",
            Refusal::Static => "it is statically linked (no program interpreter), so LD_PRELOAD is never read",
            Refusal::Setuid => "it is setuid or setgid, and the dynamic loader ignores LD_PRELOAD for such programs",
        }
    }
}

/// What exec-ing an ELF file with these facts means for the shim: Go
/// first (even dynamically linked it binds around libc), then static, then
/// a secure exec. `None` (not an ELF file the guard reads) is the kernel's
/// to judge.
pub fn verdict(facts: Option<ElfFacts>, secure_exec: bool) -> Option<Refusal> {
    let facts = facts?;
    if facts.go {
        Some(Refusal::Go)
    } else if !facts.dynamic {
        Some(Refusal::Static)
    } else if secure_exec {
        Some(Refusal::Setuid)
    } else {
        None
    }
}

/// The shared socket's descriptor, from environment entries (`NAME=value`).
pub fn inject_fd<'a>(mut env: impl Iterator<Item = &'a [u8]>) -> Option<c_int> {
    let value = env.find_map(|e| e.strip_prefix(ENV_FD))?;
    let text = std::str::from_utf8(value).ok()?;
    text.trim().parse().ok().filter(|&fd| fd >= 0)
}

/// The line the guard writes, into `buf` (cut at its end): the program,
/// the script that led to it, why, and what to use instead.
pub fn compose(buf: &mut [u8], program: &[u8], via: Option<&[u8]>, refusal: Refusal) -> usize {
    let mut w = Cursor { buf, at: 0 };
    w.put(b"corefit: --socket inject cannot serve ");
    w.put(program);
    if let Some(script) = via {
        w.put(b" (the #! interpreter of ");
        w.put(script);
        w.put(b")");
    }
    w.put(b": ");
    w.put(refusal.reason().as_bytes());
    w.put(b"; ");
    w.put(OTHER_STRATEGIES.as_bytes());
    w.put(b"; refusing to exec it\n");
    w.at
}

struct Cursor<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Cursor<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.buf.len() - self.at);
        self.buf[self.at..self.at + n].copy_from_slice(&bytes[..n]);
        self.at += n;
    }
}

/// The program an exec of `path` ends up running, when it cannot take the
/// shared socket: the interpreter's path if `path` is a script.
struct Judgement {
    refusal: Refusal,
    interpreter: Option<Interpreter>,
}

/// Follows `path` through `#!` lines and judges the ELF file it ends at.
fn judge(path: *const c_char) -> Option<Judgement> {
    let mut interpreter: Option<Interpreter> = None;
    for _ in 0..=MAX_SCRIPT_DEPTH {
        let current = interpreter.as_ref().map_or(path, CPath::as_ptr);
        let mut file = open_file(current)?;
        let mut head = [0u8; 256];
        let n = file.read_at(0, &mut head);
        if let Some(next) = shebang(&head[..n]) {
            let mut p = Interpreter::new();
            if !p.set(&[next]) {
                return None;
            }
            interpreter = Some(p);
            continue;
        }
        let refusal = verdict(elf_facts(&mut file), secure_exec(file.0))?;
        return Some(Judgement {
            refusal,
            interpreter,
        });
    }
    None
}

/// Writes the guard's line for the exec of `path` to stderr.
fn report(path: *const c_char, j: &Judgement) {
    // SAFETY: path is a caller's NUL-terminated string (checked non-null).
    let given = unsafe { std::ffi::CStr::from_ptr(path) }.to_bytes();
    let mut line = [0u8; 768];
    let len = match &j.interpreter {
        Some(interp) => compose(&mut line, interp.as_bytes(), Some(given), j.refusal),
        None => compose(&mut line, given, None, j.refusal),
    };
    // SAFETY: line[..len] is initialised; a failed write changes nothing.
    unsafe { libc::write(2, line.as_ptr().cast(), len) };
}

/// The environment entries of a C `envp` array.
///
/// # Safety
/// `envp` is null or a null-terminated array of NUL-terminated strings
/// that outlive the iterator.
unsafe fn env_entries<'a>(envp: *const *const c_char) -> impl Iterator<Item = &'a [u8]> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        if envp.is_null() {
            return None;
        }
        // SAFETY: the caller's array is null-terminated and `at` stops at
        // the terminator.
        let entry = unsafe { *envp.add(at) };
        if entry.is_null() {
            return None;
        }
        at += 1;
        // SAFETY: each entry is a C string.
        Some(unsafe { std::ffi::CStr::from_ptr(entry) }.to_bytes())
    })
}

/// The shared socket's descriptor when an exec with `envp` would hand it
/// to the next program (the variable is there and the socket survives).
///
/// # Safety
/// `envp` is null or a C `envp` array.
unsafe fn guarded_fd(envp: *const *const c_char) -> Option<c_int> {
    // SAFETY: forwarded from the caller.
    inject_fd(unsafe { env_entries(envp) }).filter(|&fd| survives_exec(fd))
}

/// The guard, once an exec keeps the shared socket: true (the line written,
/// errno EPERM) when the program at `path` cannot take it.
fn refuse_program(path: *const c_char, fd: c_int) -> bool {
    // The program first: almost every exec is of one that loads the shim,
    // and then no descriptor needs scanning.
    let Some(judgement) = judge(path) else {
        return false;
    };
    if already_serving(fd) {
        return false;
    }
    report(path, &judgement);
    set_errno(libc::EPERM);
    true
}

/// The guard for an exec of `path` with `envp`.
///
/// # Safety
/// `path` is null or a C string; `envp` is null or a C `envp` array.
unsafe fn refuse(path: *const c_char, envp: *const *const c_char) -> bool {
    // SAFETY: forwarded from the caller.
    !path.is_null() && unsafe { guarded_fd(envp) }.is_some_and(|fd| refuse_program(path, fd))
}

/// The guard for `execvp`-style calls: `file` is found in `PATH` as libc
/// would (the first regular, executable candidate).
///
/// # Safety
/// `file` is null or a C string; `envp` is null or a C `envp` array.
unsafe fn refuse_search(file: *const c_char, envp: *const *const c_char) -> bool {
    if file.is_null() {
        return false;
    }
    // SAFETY: forwarded from the caller.
    let Some(fd) = (unsafe { guarded_fd(envp) }) else {
        return false;
    };
    // SAFETY: file is a C string.
    let name = unsafe { std::ffi::CStr::from_ptr(file) }.to_bytes();
    if name.is_empty() {
        return false;
    }
    if name.contains(&b'/') {
        return refuse_program(file, fd);
    }
    // SAFETY: getenv returns null or a C string from the environment.
    let path_var = unsafe { libc::getenv(c"PATH".as_ptr()) };
    let dirs: &[u8] = if path_var.is_null() {
        b"/bin:/usr/bin"
    } else {
        // SAFETY: as above.
        unsafe { std::ffi::CStr::from_ptr(path_var) }.to_bytes()
    };
    let mut candidate = CPath::<PATH_MAX>::new();
    for dir in dirs.split(|&b| b == b':') {
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        if !candidate.set(&[dir, b"/", name]) {
            continue;
        }
        // SAFETY: candidate is NUL-terminated.
        let executable = unsafe { libc::access(candidate.as_ptr(), libc::X_OK) } == 0;
        if executable && is_regular(&candidate) {
            return refuse_program(candidate.as_ptr(), fd);
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::fd::{AsRawFd, OwnedFd};

    /// A listening TCP socket, inheritable (as corefit hands it over) or not.
    fn socket(inheritable: bool) -> OwnedFd {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = OwnedFd::from(l);
        if inheritable {
            // SAFETY: F_SETFD on a descriptor we own.
            unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) };
        }
        fd
    }

    /// A C `envp` array (the strings, and the pointers to them).
    fn envp(vars: &[String]) -> (Vec<CString>, Vec<*const c_char>) {
        let strings: Vec<CString> = vars
            .iter()
            .map(|v| CString::new(v.as_str()).unwrap())
            .collect();
        let mut ptrs: Vec<*const c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        (strings, ptrs)
    }

    fn guarded(path: &str, env: &[String]) -> bool {
        let (_keep, ptrs) = envp(env);
        let path = CString::new(path).unwrap();
        // SAFETY: a C string and a null-terminated envp array.
        unsafe { refuse(path.as_ptr(), ptrs.as_ptr()) }
    }

    fn inject_env(fd: &OwnedFd) -> Vec<String> {
        vec![
            "PATH=/usr/bin:/bin".into(),
            format!("COREFIT_INJECT_FD={}", fd.as_raw_fd()),
            "COREFIT_INJECT_PORT=3000".into(),
        ]
    }

    #[test]
    fn verdict_puts_go_before_static_before_setuid() {
        let f = |dynamic, go| Some(ElfFacts { dynamic, go });
        assert_eq!(verdict(f(true, true), true), Some(Refusal::Go));
        assert_eq!(verdict(f(false, true), false), Some(Refusal::Go));
        assert_eq!(verdict(f(false, false), true), Some(Refusal::Static));
        assert_eq!(verdict(f(true, false), true), Some(Refusal::Setuid));
        assert_eq!(verdict(f(true, false), false), None);
        assert_eq!(verdict(None, true), None, "not ELF: the kernel's call");
    }

    #[test]
    fn inject_fd_reads_only_its_own_variable() {
        fn env<'a>(v: &'a [&'static [u8]]) -> impl Iterator<Item = &'static [u8]> + 'a {
            v.iter().copied()
        }
        assert_eq!(inject_fd(env(&[b"A=1", b"COREFIT_INJECT_FD=3"])), Some(3));
        assert_eq!(inject_fd(env(&[b"COREFIT_INJECT_FD= 7 "])), Some(7));
        assert_eq!(inject_fd(env(&[b"XCOREFIT_INJECT_FD=3"])), None);
        assert_eq!(inject_fd(env(&[b"COREFIT_INJECT_FD=-1"])), None);
        assert_eq!(inject_fd(env(&[b"COREFIT_INJECT_FD=x"])), None);
        assert_eq!(inject_fd(env(&[b"COREFIT_INJECT_FD=\xff"])), None);
        assert_eq!(inject_fd(env(&[])), None);
    }

    #[test]
    fn the_line_names_the_program_the_reason_and_the_strategies_and_fits() {
        let mut buf = [0u8; 768];
        let n = compose(&mut buf, b"/app/server", Some(b"./run.sh"), Refusal::Go);
        let line = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(line.starts_with("corefit: --socket inject cannot serve /app/server (the #! interpreter of ./run.sh): it is a Go program"), "{line}");
        for part in ["--socket proxy", "LISTEN_FDS", "SO_REUSEPORT"] {
            assert!(line.contains(part), "{line}");
        }
        assert!(line.ends_with("refusing to exec it\n"), "{line}");
        // A path longer than the buffer is cut, never a panic.
        let long = vec![b'x'; 2000];
        assert_eq!(
            compose(&mut buf, &long, Some(&long), Refusal::Static),
            buf.len()
        );
        let mut tiny = [0u8; 3];
        assert_eq!(compose(&mut tiny, b"/a", None, Refusal::Setuid), 3);
    }

    #[test]
    fn an_exec_that_keeps_the_shared_socket_must_run_a_program_that_loads_the_shim() {
        let fd = socket(true);
        let env = inject_env(&fd);
        assert!(guarded("/bin/busybox", &env), "static");
        assert_eq!(errno(), libc::EPERM);
        assert!(!guarded("/bin/sh", &env), "dynamic C program");
        assert!(!guarded("/bin/busybox", &env[..1]), "no COREFIT_INJECT_FD");
        // A script is judged by its interpreter.
        let dir = std::env::temp_dir().join(format!("corefit-guard-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("run");
        std::fs::write(&script, "#!/bin/busybox sh\nexec true\n").unwrap();
        assert!(guarded(script.to_str().unwrap(), &env), "#! static");
        std::fs::write(&script, "#!/bin/sh\nexec true\n").unwrap();
        assert!(!guarded(script.to_str().unwrap(), &env), "#! dynamic");
        // What the guard cannot read is the kernel's to judge.
        for odd in [
            "",
            "/nonexistent/x",
            "/dev/null",
            "/proc/self/fd",
            dir.to_str().unwrap(),
        ] {
            assert!(!guarded(odd, &env), "{odd:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_socket_that_does_not_survive_exec_or_is_already_served_is_not_guarded() {
        let closed_on_exec = socket(false);
        assert!(!guarded("/bin/busybox", &inject_env(&closed_on_exec)));
        let fd = socket(true);
        let env = inject_env(&fd);
        assert!(guarded("/bin/busybox", &env));
        // The app bound the port: the shim made its socket a dup of the
        // shared one. What it execs now is a helper.
        // SAFETY: dup of a descriptor we own; the copy is closed below.
        let copy = unsafe { libc::dup(fd.as_raw_fd()) };
        assert!(copy >= 0);
        assert!(!guarded("/bin/busybox", &env), "already serving");
        // SAFETY: closing our own copy.
        unsafe { libc::close(copy) };
        assert!(guarded("/bin/busybox", &env));
    }

    #[test]
    fn execvp_names_are_found_in_path() {
        let fd = socket(true);
        let (_keep, ptrs) = envp(&inject_env(&fd));
        let search = |name: &str| {
            let name = CString::new(name).unwrap();
            // SAFETY: a C string and a null-terminated envp array.
            unsafe { refuse_search(name.as_ptr(), ptrs.as_ptr()) }
        };
        assert!(search("busybox"));
        assert!(!search("sh"));
        assert!(!search("no-such-program-xyz"));
        assert!(!search(""));
    }
}
