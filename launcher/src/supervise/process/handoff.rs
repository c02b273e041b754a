//! The `shared` strategy's last step, run in the worker's own process by
//! the hidden `corefit __exec-worker` subcommand: put the inherited socket
//! on fd 3, set `LISTEN_PID` to this process's pid, and exec the real
//! command. exec keeps the pid, so the app sees `LISTEN_PID == getpid()`
//! as the systemd socket-activation protocol requires (gunicorn, uvicorn
//! `--fd 3`, Node's `listen({fd: 3})` and Rust's `listenfd` all check it).

use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::unistd::{close, dup2, getpid};

use crate::exit;

/// The first socket of the protocol is always fd 3.
pub const LISTEN_FDS_START: RawFd = 3;

/// The name given in `LISTEN_FDNAMES`.
pub const FD_NAME: &str = "corefit";

/// Moves `inherited` to fd 3 and execs `command`; returns only on failure,
/// with the exit code to use (127 not found, 126 not executable).
///
/// With `inject_preload` (the `inject` strategy) the app gets the preload
/// shim appended to `LD_PRELOAD` and `COREFIT_INJECT_FD=3` instead of the
/// socket-activation variables (its own `bind()` picks the socket up; the
/// port comes in `COREFIT_INJECT_PORT` from the spawning corefit). With
/// `handover_preload` (`shared`, a dynamically linked app) the shim only
/// hands corefit what the app closes while stopping; LISTEN_* are set.
pub fn exec_with_socket(
    inherited: RawFd,
    inject_preload: Option<&str>,
    handover_preload: Option<&str>,
    command: &[String],
) -> u8 {
    let Some((program, args)) = command.split_first() else {
        eprintln!("corefit: __exec-worker: no command given");
        return exit::FAILURE;
    };
    if let Err(e) = move_to_fd3(inherited) {
        eprintln!("corefit: cannot put the shared socket (fd {inherited}) on fd 3: {e}");
        return exit::FAILURE;
    }
    let mut cmd = Command::new(program);
    cmd.args(args);
    match inject_preload {
        Some(shim) => {
            let existing = std::env::var("LD_PRELOAD").ok();
            cmd.env(crate::inject::ENV_FD, LISTEN_FDS_START.to_string())
                .env(
                    "LD_PRELOAD",
                    crate::inject::ld_preload(existing.as_deref(), shim),
                );
        }
        None => {
            cmd.env("LISTEN_FDS", "1")
                .env("LISTEN_PID", getpid().to_string())
                .env("LISTEN_FDNAMES", FD_NAME);
            if let Some(shim) = handover_preload {
                let existing = std::env::var("LD_PRELOAD").ok();
                cmd.env(
                    "LD_PRELOAD",
                    crate::inject::ld_preload(existing.as_deref(), shim),
                );
            }
        }
    }
    let err = cmd.exec();
    eprintln!("corefit: cannot execute {program:?}: {err}");
    exit::for_exec_error(err.kind())
}

fn move_to_fd3(inherited: RawFd) -> nix::Result<()> {
    if inherited == LISTEN_FDS_START {
        // Already there: make sure it survives exec.
        fcntl(LISTEN_FDS_START, FcntlArg::F_SETFD(FdFlag::empty()))?;
        return Ok(());
    }
    // dup2 clears close-on-exec on the new descriptor.
    dup2(inherited, LISTEN_FDS_START)?;
    close(inherited)
}
