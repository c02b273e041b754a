//! How a process ended, the exit code corefit passes on (as tini does), and
//! the check that the command can be executed at all (127 / 126).

use std::fmt;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use nix::unistd::{access, AccessFlags};
use thiserror::Error;

/// Exit code when the command does not exist (shells and tini use 127).
pub const EXIT_NOT_FOUND: u8 = 127;
/// Exit code when the command exists but cannot be executed.
pub const EXIT_NOT_EXECUTABLE: u8 = 126;
/// Exit code for corefit's own failures (bad input is 2, from clap/main).
pub const EXIT_FAILURE: u8 = 1;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
            ExitReason::Signal(n) => (128 + n).clamp(0, 255) as u8,
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
            ExitReason::Code(c) => c == 0 || c == 128 + signal,
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

/// Why the command cannot be started.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandError {
    #[error("nothing to run: give the command after `--`, e.g. `corefit -- node server.js`")]
    Empty,
    #[error("command not found: {0:?} (not a file, and not on PATH)")]
    NotFound(String),
    #[error("cannot execute {path:?}: {why}")]
    NotExecutable { path: PathBuf, why: String },
}

impl CommandError {
    /// The exit code tini and shells use for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Empty => 2,
            CommandError::NotFound(_) => EXIT_NOT_FOUND,
            CommandError::NotExecutable { .. } => EXIT_NOT_EXECUTABLE,
        }
    }
}

/// Resolves `program` as `execvp` would (a name with a `/` is a path,
/// otherwise the first executable match on `path_var`), so corefit can
/// exit 127 or 126 before it starts anything.
pub fn resolve_command(program: &str, path_var: Option<&str>) -> Result<PathBuf, CommandError> {
    if program.is_empty() {
        return Err(CommandError::Empty);
    }
    if program.contains('/') {
        let path = Path::new(program);
        return check_executable(path).map(|()| path.to_path_buf());
    }
    let mut first_denied = None;
    for dir in path_var
        .unwrap_or("/usr/local/bin:/usr/bin:/bin")
        .split(':')
    {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(program);
        match check_executable(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(CommandError::NotFound(_)) => {}
            Err(e) => {
                first_denied.get_or_insert(e);
            }
        }
    }
    Err(first_denied.unwrap_or_else(|| CommandError::NotFound(program.to_owned())))
}

fn check_executable(path: &Path) -> Result<(), CommandError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CommandError::NotFound(path.display().to_string()))
        }
        Err(e) => {
            return Err(CommandError::NotExecutable {
                path: path.to_path_buf(),
                why: e.to_string(),
            })
        }
    };
    if meta.is_dir() {
        return Err(CommandError::NotExecutable {
            path: path.to_path_buf(),
            why: "it is a directory".into(),
        });
    }
    access(path, AccessFlags::X_OK).map_err(|e| CommandError::NotExecutable {
        path: path.to_path_buf(),
        why: format!("{} (is its executable bit set?)", e.desc()),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn codes_follow_tini() {
        assert_eq!(ExitReason::Code(0).code(), 0);
        assert_eq!(ExitReason::Code(42).code(), 42);
        assert_eq!(ExitReason::Code(255).code(), 255);
        assert_eq!(ExitReason::Signal(9).code(), 137);
        assert_eq!(ExitReason::Signal(15).code(), 143);
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
    fn resolves_like_execvp() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "data").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path_var = dir.path().display().to_string();

        assert_eq!(resolve_command("tool", Some(&path_var)), Ok(exe.clone()));
        assert_eq!(
            resolve_command("nope", Some(&path_var))
                .unwrap_err()
                .exit_code(),
            127
        );
        assert_eq!(
            resolve_command(plain.to_str().unwrap(), None)
                .unwrap_err()
                .exit_code(),
            126
        );
        assert_eq!(
            resolve_command(dir.path().to_str().unwrap(), None)
                .unwrap_err()
                .exit_code(),
            126
        );
        assert_eq!(resolve_command("", None), Err(CommandError::Empty));
    }
}
