//! Starting one worker: its environment, its own process group, and pipes
//! for its output when lines are to be prefixed or kept whole.

use std::collections::BTreeMap;
use std::os::fd::RawFd;
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

/// What to start.
#[derive(Debug, Clone)]
pub struct SpawnSpec<'a> {
    /// The resolved program.
    pub program: &'a Path,
    pub args: &'a [String],
    /// Set on top of corefit's own environment.
    pub env: BTreeMap<String, String>,
    /// Pipe stdout/stderr to corefit (else the worker inherits them).
    pub pipe_output: bool,
    /// Give the worker corefit's stdin (one worker); else /dev/null.
    pub inherit_stdin: bool,
    /// `shared`: the inheritable socket, handed over through
    /// `corefit __exec-worker` (see [`super::handoff`]).
    pub shared_fd: Option<RawFd>,
    /// `inject`: the preload shim's path, passed to `__exec-worker`.
    pub inject_preload: Option<String>,
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
    let mut cmd = match spec.shared_fd {
        Some(fd) => {
            let me = std::env::current_exe().map_err(|source| SpawnError {
                program: spec.program.to_path_buf(),
                source,
            })?;
            let mut c = Command::new(me);
            c.arg("__exec-worker")
                .arg("--listen-fd")
                .arg(fd.to_string());
            if let Some(shim) = &spec.inject_preload {
                c.arg("--inject-preload").arg(shim);
            }
            c.arg("--").arg(spec.program).args(spec.args);
            c
        }
        None => {
            let mut c = Command::new(spec.program);
            c.args(spec.args);
            c
        }
    };
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
