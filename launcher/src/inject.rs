//! `--socket inject`: the preload shim carried inside the `corefit` binary
//! (built by `build.rs` from the `corefit-preload` crate), written to a
//! sealed memfd, and the checks that say whether a command can load it.
//!
//! Workers load the shim from `/proc/<corefit's pid>/fd/<memfd>`: nothing
//! is written to disk (read-only root filesystems work) and no descriptor
//! leaks into the app.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use thiserror::Error;

use crate::probe::executable::{inspect, Executable, ExecutableError, Linkage};

/// The shim's bytes.
pub static PRELOAD_SO: &[u8] = include_bytes!(env!("COREFIT_PRELOAD_SO"));

/// The variables the shim reads.
pub const ENV_FD: &str = "COREFIT_INJECT_FD";
pub const ENV_PORT: &str = "COREFIT_INJECT_PORT";

/// The strategies that serve a program `inject` cannot, for every refusal.
pub const OTHER_STRATEGIES: &str = "use --socket proxy (works with every app), --socket shared if the app serves an inherited socket (LISTEN_FDS / fd 3), or --socket reuseport if it binds PORT with SO_REUSEPORT";

/// Why `inject` cannot serve a command.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InjectError {
    #[error("--socket inject cannot serve {path}: it is a Go program, and Go binds its sockets with raw system calls, not through libc's bind(), so the preload shim never sees them; {OTHER_STRATEGIES}")]
    Go { path: String, linkage: Linkage },
    #[error("--socket inject needs a dynamically linked program, but {path} is statically linked (no program interpreter), so LD_PRELOAD is never read; {OTHER_STRATEGIES}")]
    Static { path: String },
    #[error("--socket inject cannot serve {path}: it is setuid or setgid, and the dynamic loader ignores LD_PRELOAD for such programs; {OTHER_STRATEGIES}")]
    Setuid { path: String },
    #[error("--socket inject: cannot inspect the command: {0}")]
    Inspect(#[from] ExecutableError),
    #[error("--socket inject: cannot create the in-memory copy of the preload library: {0}")]
    Memfd(String),
}

/// Whether `command` can load the shim; the inspected program on success.
pub fn check_command(command: &str, path_var: Option<&str>) -> Result<Executable, InjectError> {
    let exe = inspect(command, path_var)?;
    check_executable(&exe)?;
    Ok(exe)
}

/// Whether an inspected program loads the shim and binds through it. Go
/// first: a Go program cannot be served even when dynamically linked.
pub fn check_executable(exe: &Executable) -> Result<(), InjectError> {
    let path = exe.path.display().to_string();
    if exe.go {
        return Err(InjectError::Go {
            path,
            linkage: exe.linkage,
        });
    }
    if exe.linkage == Linkage::Static {
        return Err(InjectError::Static { path });
    }
    if exe.setuid_or_setgid {
        return Err(InjectError::Setuid { path });
    }
    Ok(())
}

/// The shim in a sealed memfd (close-on-exec: workers open it by path).
pub fn preload_memfd() -> Result<OwnedFd, InjectError> {
    let err = |e: &dyn std::fmt::Display| InjectError::Memfd(e.to_string());
    let fd = memfd_create(
        c"corefit-preload.so",
        MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
    )
    .map_err(|e| err(&e))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(PRELOAD_SO).map_err(|e| err(&e))?;
    let seals = SealFlag::F_SEAL_WRITE
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_SEAL;
    fcntl(file.as_raw_fd(), FcntlArg::F_ADD_SEALS(seals)).map_err(|e| err(&e))?;
    Ok(OwnedFd::from(file))
}

/// The path a worker loads the shim from.
pub fn preload_path(memfd: &OwnedFd) -> String {
    format!("/proc/{}/fd/{}", std::process::id(), memfd.as_raw_fd())
}

/// `LD_PRELOAD` for a worker: the user's entries first, then the shim.
pub fn ld_preload(existing: Option<&str>, shim: &str) -> String {
    match existing.map(str::trim).filter(|s| !s.is_empty()) {
        Some(user) => format!("{user}:{shim}"),
        None => shim.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shim_is_embedded_and_loadable_from_a_memfd() {
        assert!(
            PRELOAD_SO.starts_with(b"\x7fELF"),
            "the embedded shim is an ELF file"
        );
        let fd = preload_memfd().unwrap();
        let path = preload_path(&fd);
        let read_back = std::fs::read(&path).unwrap();
        assert_eq!(read_back, PRELOAD_SO);
        // Sealed: nobody can change what workers load.
        assert!(std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"x"))
            .is_err());
    }

    #[test]
    fn ld_preload_keeps_the_users_entries_first() {
        assert_eq!(ld_preload(None, "/proc/1/fd/5"), "/proc/1/fd/5");
        assert_eq!(ld_preload(Some(""), "/s"), "/s");
        assert_eq!(
            ld_preload(Some("/usr/lib/libjemalloc.so"), "/s"),
            "/usr/lib/libjemalloc.so:/s"
        );
    }

    #[test]
    fn static_programs_are_refused_naming_other_strategies() {
        // Debian's busybox-static (installed by scripts/setup.sh) has no program interpreter.
        let e =
            check_command("/bin/busybox", None).expect_err("busybox-static is statically linked");
        assert!(matches!(e, InjectError::Static { .. }), "{e}");
        assert!(e.to_string().contains("--socket proxy"), "{e}");
    }

    #[test]
    fn go_programs_are_refused_dynamic_or_static_naming_the_strategies_that_work() {
        for (name, linkage) in [
            ("hello-dynamic", Linkage::Dynamic),
            ("hello-static", Linkage::Static),
        ] {
            let path = corefit_test_support::apps::go_app(name);
            let e = check_command(path.to_str().unwrap(), None).expect_err(name);
            assert_eq!(
                e,
                InjectError::Go {
                    path: path.display().to_string(),
                    linkage
                }
            );
            let text = e.to_string();
            for part in [
                path.to_str().unwrap(),
                "Go program",
                "raw system calls",
                "--socket proxy",
                "--socket shared",
                "LISTEN_FDS",
                "--socket reuseport",
                "SO_REUSEPORT",
            ] {
                assert!(text.contains(part), "{part:?} missing: {text}");
            }
        }
    }

    #[test]
    fn dynamic_programs_pass_the_check() {
        assert!(check_command("node", Some("/usr/bin:/bin")).is_ok());
        assert!(matches!(
            check_command("nope-xyz", Some("/usr/bin")),
            Err(InjectError::Inspect(_))
        ));
    }
}
