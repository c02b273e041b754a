//! Reaping, as tini does: `waitpid(-1, WNOHANG)` until nothing is left to
//! collect, so adopted orphans never stay zombies. corefit makes itself a
//! child subreaper when it is not PID 1, so orphans of its workers come to
//! it instead of to the host's init.

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpid, Pid};

use crate::exit::ExitReason;

/// Collects every child that has ended.
pub fn reap_all() -> Vec<(i32, ExitReason)> {
    let mut out = Vec::new();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => out.push((pid.as_raw(), ExitReason::Code(code))),
            Ok(WaitStatus::Signaled(pid, sig, _core)) => {
                out.push((pid.as_raw(), ExitReason::Signal(sig as i32)))
            }
            Ok(WaitStatus::StillAlive) => break,
            Ok(_) => continue, // stopped / continued: not asked for
            Err(Errno::EINTR) => continue,
            Err(_) => break, // ECHILD: no children at all
        }
    }
    out
}

/// What becoming the reaper of orphans amounted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaperRole {
    /// corefit is PID 1: orphans come to it anyway.
    Init,
    /// PR_SET_CHILD_SUBREAPER set.
    Subreaper,
    /// The call failed (the message says why); orphans go elsewhere.
    Unavailable(String),
}

/// Makes corefit the reaper of its workers' orphans.
pub fn become_reaper() -> ReaperRole {
    if getpid().as_raw() == 1 {
        return ReaperRole::Init;
    }
    match nix::sys::prctl::set_child_subreaper(true) {
        Ok(()) => ReaperRole::Subreaper,
        Err(e) => ReaperRole::Unavailable(e.desc().to_owned()),
    }
}
