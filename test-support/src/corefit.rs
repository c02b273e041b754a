//! The real `corefit` binary under test: the [`Corefit`] guard (started
//! with a clean environment, its output captured line by line, killed on
//! drop with every process seen under it, by pid), [`Cluster`] (a corefit
//! on free ports with its admin endpoint and control socket), and the
//! control subcommands.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::args::Args;
use crate::http::free_port;
use crate::process::{alive, all_procs, descendants_of};
use crate::wait::wait_for;

/// The `corefit` binary built for this test run.
pub fn corefit_bin() -> PathBuf {
    crate::target_bin("corefit")
}

/// Output captured from a stream, line by line, also echoed for debugging.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    text: Arc<Mutex<String>>,
    /// Set when the stream reached EOF.
    closed: Arc<std::sync::atomic::AtomicBool>,
}

impl Captured {
    fn spawn_reader(stream: impl Read + Send + 'static, tag: &'static str) -> Captured {
        let c = Captured::default();
        let inner = c.text.clone();
        let closed = c.closed.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                eprintln!("  [{tag}] {line}");
                let mut s = inner.lock().unwrap_or_else(|p| p.into_inner());
                s.push_str(&line);
                s.push('\n');
            }
            closed.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        c
    }

    /// Waits (bounded) until the stream is closed, so `text()` is complete.
    pub fn wait_closed(&self, limit: Duration) {
        wait_for(limit, "the output stream to close", || {
            self.closed
                .load(std::sync::atomic::Ordering::SeqCst)
                .then_some(())
        });
    }

    pub fn text(&self) -> String {
        self.text.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn contains(&self, needle: &str) -> bool {
        self.text().contains(needle)
    }

    /// Waits until a line containing `needle` appears; returns that line.
    pub fn wait_line(&self, needle: &str, limit: Duration) -> String {
        wait_for(limit, &format!("a line containing {needle:?}"), || {
            self.text()
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_owned)
        })
    }
}

/// A running `corefit`, killed with everything under it when dropped.
#[derive(Debug)]
pub struct Corefit {
    child: Option<Child>,
    pub pid: i32,
    pub stdout: Captured,
    pub stderr: Captured,
    status: Option<ExitStatus>,
    /// Every pid ever seen under corefit, killed on drop if still there.
    seen: Vec<i32>,
}

/// A clean environment: PATH and HOME only (see BENCH.md on
/// NODE_EXTRA_CA_CERTS), plus `extra`.
pub fn clean_command<S: AsRef<OsStr>>(args: &[S], extra: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(corefit_bin());
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "HOME",
            std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
        )
        .envs(extra.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

impl Corefit {
    /// Starts `corefit ARGS` with a clean environment plus `extra`.
    pub fn start<S: AsRef<OsStr>>(args: &[S], extra: &[(&str, &str)]) -> Corefit {
        Corefit::spawned(clean_command(args, extra))
    }

    /// Starts `WRAPPER... corefit ARGS` (e.g. `unshare --pid --fork`); `pid`
    /// is then the wrapper's, see [`Corefit::inner_pid`].
    pub fn start_wrapped<S: AsRef<OsStr>>(
        wrapper: &[&str],
        args: &[S],
        extra: &[(&str, &str)],
    ) -> Corefit {
        let inner = clean_command(args, extra);
        let mut cmd = Command::new(wrapper[0]);
        cmd.args(&wrapper[1..])
            .arg(corefit_bin())
            .args(args)
            .env_clear()
            .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Corefit::spawned(cmd)
    }

    /// The corefit process under a wrapper (the wrapper's only child).
    pub fn inner_pid(&self) -> i32 {
        let me = self.pid;
        wait_for(Duration::from_secs(5), "corefit under its wrapper", || {
            all_procs()
                .into_iter()
                .find(|p| p.ppid == me)
                .map(|p| p.pid)
        })
    }

    fn spawned(mut cmd: Command) -> Corefit {
        let mut child = cmd.spawn().expect("start corefit");
        let stdout = Captured::spawn_reader(child.stdout.take().expect("stdout"), "out");
        let stderr = Captured::spawn_reader(child.stderr.take().expect("stderr"), "err");
        Corefit {
            pid: child.id() as i32,
            child: Some(child),
            stdout,
            stderr,
            status: None,
            seen: Vec::new(),
        }
    }

    pub fn signal(&self, sig: Signal) {
        if self.status.is_none() {
            kill(Pid::from_raw(self.pid), sig).expect("signal corefit");
        }
    }

    /// The exit status, if corefit has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Some(child) = self.child.as_mut() {
                self.status = child.try_wait().expect("try_wait");
            }
        }
        self.status
    }

    /// Waits for corefit to exit and for its output to be read to the end;
    /// returns its exit code (panics when a signal killed it).
    pub fn wait_exit(&mut self, limit: Duration) -> i32 {
        let status = wait_for(limit, "corefit to exit", || self.try_status());
        self.stdout.wait_closed(Duration::from_secs(5));
        self.stderr.wait_closed(Duration::from_secs(5));
        status
            .code()
            .unwrap_or_else(|| panic!("corefit was killed by a signal: {status:?}"))
    }

    /// Processes under corefit (children, grandchildren...) right now.
    pub fn descendants(&mut self) -> Vec<i32> {
        let found = descendants_of(self.pid);
        for p in &found {
            if !self.seen.contains(p) {
                self.seen.push(*p);
            }
        }
        found
    }

    /// Direct children of corefit in state Z.
    pub fn zombie_children(&self) -> Vec<i32> {
        all_procs()
            .into_iter()
            .filter(|p| p.ppid == self.pid && p.state == 'Z')
            .map(|p| p.pid)
            .collect()
    }
}

impl Drop for Corefit {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            // Stopped first, so it starts no worker between the listing
            // and the kill (a worker started then would outlive the test).
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGSTOP);
            self.descendants();
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
            if let Some(child) = self.child.as_mut() {
                let _ = child.wait();
            }
        }
        for pid in self.seen.drain(..) {
            if alive(pid) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// Runs `corefit ARGS --control-socket SOCKET` (a subcommand).
pub fn ctl(socket: &Path, args: &[&str]) -> Output {
    ctl_command(socket, args)
        .output()
        .expect("run corefit subcommand")
}

/// The command [`ctl`] runs, to adjust (user, groups) before running it.
pub fn ctl_command(socket: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(corefit_bin());
    cmd.args(args)
        .arg("--control-socket")
        .arg(socket)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

/// `corefit status --json` as JSON (panics unless it succeeded).
pub fn status_json(socket: &Path) -> serde_json::Value {
    let out = ctl(socket, &["status", "--json"]);
    assert!(
        out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status --json is JSON")
}

/// The pids of the workers that are ready, per `status --json`.
pub fn ready_pids(socket: &Path) -> BTreeSet<i32> {
    status_json(socket)["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .filter(|w| w["phase"] == "ready")
        .filter_map(|w| w["pid"].as_i64().map(|p| p as i32))
        .collect()
}

impl Args {
    /// Starts `corefit` with these arguments, a clean environment plus
    /// `env`.
    pub fn start(&self, env: &[(&str, &str)]) -> Corefit {
        Corefit::start(&self.build(), env)
    }

    /// The same, under `wrapper` (see [`Corefit::start_wrapped`]).
    pub fn start_wrapped(&self, wrapper: &[&str], env: &[(&str, &str)]) -> Corefit {
        Corefit::start_wrapped(wrapper, &self.build(), env)
    }

    /// `corefit ARGS` run to its end: its output.
    pub fn output(&self, env: &[(&str, &str)]) -> Output {
        clean_command(&self.build(), env)
            .output()
            .expect("run corefit")
    }
}

/// A corefit on free ports: the app's port on 127.0.0.1, the admin
/// endpoint, and a control socket in a temporary directory that lives as
/// long as the run.
#[derive(Debug)]
pub struct Cluster {
    pub corefit: Corefit,
    pub port: u16,
    pub admin: u16,
    pub control: PathBuf,
    /// Holds the control socket until the run ends.
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `corefit ARGS --host 127.0.0.1 --port P --admin-addr ...
    /// --control-socket ... -- COMMAND` with a clean environment plus
    /// `env`; `wrapper` (a shell that enters a cgroup, `unshare`...) goes
    /// in front.
    pub fn start(args: Args, env: &[(&str, &str)], wrapper: Option<&[&str]>) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let control = dir.path().join("c.sock");
        let (port, admin) = (free_port(), free_port());
        let args = args.port(port).admin(admin).control(&control).build();
        let corefit = match wrapper {
            Some(w) => Corefit::start_wrapped(w, &args, env),
            None => Corefit::start(&args, env),
        };
        Cluster {
            corefit,
            port,
            admin,
            control,
            dir,
        }
    }

    /// `corefit status --json` of this run.
    pub fn status(&self) -> serde_json::Value {
        status_json(&self.control)
    }

    /// Sends SIGTERM and waits (bounded) for the exit code.
    pub fn stop(&mut self, limit: Duration) -> i32 {
        self.corefit.signal(Signal::SIGTERM);
        self.corefit.wait_exit(limit)
    }
}
