//! Starting one worker: its environment, its own process group, and pipes
//! for its output when lines are to be prefixed or kept whole.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStderr, ChildStdout, Command, Stdio};

use thiserror::Error;

/// Variables corefit itself may have been given by its own supervisor;
/// they describe corefit, not the worker, so they are not passed on.
pub const NOT_INHERITED: [&str; 4] = [
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
];

/// What to start (the argv from [`crate::supervise::launch::argv`]).
#[derive(Debug, Clone)]
pub struct SpawnSpec<'a> {
    /// The resolved program, for errors.
    pub program: &'a Path,
    /// What is executed: the program, or corefit's `__exec-worker`.
    pub command: PathBuf,
    pub args: Vec<OsString>,
    /// Set on top of corefit's own environment.
    pub env: BTreeMap<String, String>,
    /// Pipe stdout/stderr to corefit (else the worker inherits them).
    pub pipe_output: bool,
    /// Give the worker corefit's stdin (one worker); else /dev/null.
    pub inherit_stdin: bool,
}

/// A started worker.
#[derive(Debug)]
pub struct Started {
    pub pid: i32,
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
}

/// A worker that could not be started.
#[derive(Debug, Error)]
#[error("cannot start {program:?}: {source}")]
pub struct SpawnError {
    pub program: PathBuf,
    pub source: std::io::Error,
}

impl SpawnError {
    /// 127 not found, 126 not executable, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        crate::exit::for_spawn_error(self.source.kind())
    }
}

/// Starts the worker in a new process group (pgid = its pid), so signals
/// can go to everything it starts.
pub fn spawn(spec: &SpawnSpec<'_>) -> Result<Started, SpawnError> {
    let mut cmd = Command::new(&spec.command);
    cmd.args(&spec.args);
    for name in NOT_INHERITED {
        cmd.env_remove(name);
    }
    cmd.envs(&spec.env).process_group(0);
    if !spec.inherit_stdin {
        cmd.stdin(Stdio::null());
    }
    if spec.pipe_output {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let mut child = cmd.spawn().map_err(|source| SpawnError {
        program: spec.program.to_path_buf(),
        source,
    })?;
    // The child is reaped by the supervisor's waitpid(-1) loop, never
    // through `Child`; dropping `Child` neither waits nor kills.
    Ok(Started {
        pid: child.id() as i32,
        stdout: child.stdout.take(),
        stderr: child.stderr.take(),
    })
}
