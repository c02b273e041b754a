//! The check that the command can be executed at all, before anything
//! starts: 127 when it does not exist, 126 when it cannot be executed (the
//! codes are in [`crate::exit`]).

use std::path::{Path, PathBuf};

use nix::unistd::{access, AccessFlags};
use thiserror::Error;

use crate::exit;

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
            CommandError::Empty => exit::USAGE,
            CommandError::NotFound(_) => exit::NOT_FOUND,
            CommandError::NotExecutable { .. } => exit::NOT_EXECUTABLE,
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
