//! Every exit code corefit uses, in one table, and how a process ended.
//!
//! ```text
//!  code     corefit -- CMD (as tini)               corefit plan | status | reload | scale | stop
//!  0        the single worker's 0; a clean stop    success / accepted
//!  1        corefit's own failure (a socket, the   refused, or corefit cannot be reached
//!           event loop); a cluster worker failed
//!  2        invalid input (a flag, variable or     invalid input; a malformed scale target
//!           value named in the message)
//!  N        the single worker's own exit(N)
//!  126      CMD exists but cannot be executed
//!  127      CMD not found
//!  128+N    signal N killed the worker (137: a worker had to be SIGKILLed after the grace period)
//! ```
//!
//! Pure: no I/O. The pre-check that yields 126/127 before anything starts
//! is `supervise::process::command`.

use std::fmt;
use std::io::ErrorKind;

use nix::sys::signal::Signal;

/// Everything went as asked.
pub const SUCCESS: u8 = 0;
/// corefit's own failure (and a refused or unreachable control request).
pub const FAILURE: u8 = 1;
/// Invalid input: a flag, a variable or a value (named in the message).
pub const USAGE: u8 = 2;
/// The command exists but cannot be executed (shells and tini use 126).
pub const NOT_EXECUTABLE: u8 = 126;
/// The command does not exist (shells and tini use 127).
pub const NOT_FOUND: u8 = 127;
/// A process killed by signal N reports 128+N.
pub const SIGNAL_BASE: u8 = 128;
/// A worker had to be killed (SIGKILL) after the grace period.
pub const KILLED_AFTER_GRACE: u8 = SIGNAL_BASE + 9;

/// The code for a failure that must not read as success: `code`, or
/// [`FAILURE`] when `code` is 0.
pub fn nonzero(code: u8) -> u8 {
    if code == SUCCESS {
        FAILURE
    } else {
        code
    }
}

/// Starting a worker failed with `kind`: 127 not found, 126 not
/// executable, 1 otherwise (a fork failure is corefit's own).
pub fn for_spawn_error(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::NotFound => NOT_FOUND,
        ErrorKind::PermissionDenied => NOT_EXECUTABLE,
        _ => FAILURE,
    }
}

/// `exec` itself failed with `kind` (in `__exec-worker`): 127 not found,
/// 126 for anything else, as a shell's exec.
pub fn for_exec_error(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::NotFound => NOT_FOUND,
        _ => NOT_EXECUTABLE,
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExitReason {
    /// It called exit(code).
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

impl ExitReason {
    /// The code a shell or tini would report: the code, or 128+N.
    pub fn code(self) -> u8 {
        match self {
            ExitReason::Code(c) => (c & 0xff) as u8,
            ExitReason::Signal(n) => (i32::from(SIGNAL_BASE) + n).clamp(0, 255) as u8,
        }
    }

    /// Exit 0.
    pub fn success(self) -> bool {
        self == ExitReason::Code(0)
    }

    /// True when this is what `signal` does to a process that obeys it:
    /// killed by it, or the conventional exit code 128+N.
    pub fn obeyed(self, signal: i32) -> bool {
        match self {
            ExitReason::Code(c) => c == 0 || c == i32::from(SIGNAL_BASE) + signal,
            ExitReason::Signal(n) => n == signal,
        }
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitReason::Code(c) => write!(f, "exited with code {c}"),
            ExitReason::Signal(n) => match Signal::try_from(n) {
                Ok(s) => write!(f, "was killed by signal {n} ({})", s.as_str()),
                Err(_) => write!(f, "was killed by signal {n}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_tini() {
        assert_eq!(ExitReason::Code(0).code(), 0);
        assert_eq!(ExitReason::Code(42).code(), 42);
        assert_eq!(ExitReason::Code(255).code(), 255);
        assert_eq!(ExitReason::Signal(9).code(), 137);
        assert_eq!(ExitReason::Signal(15).code(), 143);
        assert_eq!(KILLED_AFTER_GRACE, 137);
    }

    #[test]
    fn obeying_a_signal() {
        assert!(ExitReason::Signal(15).obeyed(15));
        assert!(ExitReason::Code(0).obeyed(15));
        assert!(ExitReason::Code(143).obeyed(15));
        assert!(!ExitReason::Code(1).obeyed(15));
        assert!(!ExitReason::Signal(9).obeyed(15));
    }

    #[test]
    fn display_names_the_signal() {
        assert_eq!(
            ExitReason::Signal(9).to_string(),
            "was killed by signal 9 (SIGKILL)"
        );
        assert_eq!(ExitReason::Code(3).to_string(), "exited with code 3");
    }

    #[test]
    fn failures_map_as_shells_do() {
        for (kind, spawn, exec) in [
            (ErrorKind::NotFound, 127, 127),
            (ErrorKind::PermissionDenied, 126, 126),
            (ErrorKind::OutOfMemory, 1, 126),
        ] {
            assert_eq!(for_spawn_error(kind), spawn, "{kind:?}");
            assert_eq!(for_exec_error(kind), exec, "{kind:?}");
        }
        assert_eq!(nonzero(0), 1);
        assert_eq!(nonzero(3), 3);
    }
}
