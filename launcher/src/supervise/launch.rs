//! What starting one worker means, decided before any effect: its
//! environment, its port, which descriptors it needs (the shared socket,
//! a `NOTIFY_SOCKET`, a Node IPC channel), how it is checked for
//! readiness, and the argv that runs it. Pure: the runtime creates the
//! descriptors the plan asks for, adds what they are called
//! ([`LaunchPlan::notify_socket`], [`LaunchPlan::ipc_channel`]) and spawns.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::config::{ReadyCheck, RunConfig, SocketStrategy};
use super::machine::WorkerId;
use super::settings::Settings;
use crate::plan::worker_env::WorkerEnv;

/// What one launch depends on.
#[derive(Debug, Clone, Copy)]
pub struct LaunchInput<'a> {
    pub id: WorkerId,
    /// Workers wanted now (`COREFIT_WORKERS` after scaling).
    pub desired: u32,
    /// Worker slots this run has had (the first count, or the highest id
    /// + 1 after scaling up): more than one pipes output and closes stdin.
    pub slots: usize,
    pub settings: &'a Settings,
    pub cfg: &'a RunConfig,
    /// The plan in force's per-worker environment.
    pub worker_env: &'a WorkerEnv,
    /// `proxy`: the free loopback port the runtime found for it.
    pub private_port: Option<u16>,
}

/// How a started worker is found ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyWatch {
    /// Connect to its port until it accepts.
    Port(SocketAddr),
    /// `READY=1` on its `NOTIFY_SOCKET`.
    Notify,
    /// Its own shared socket is listening (the app called `listen()`).
    Listening,
    /// `process.send('ready')` on its IPC channel, or no check at all.
    None,
}

/// One worker's launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchPlan {
    /// Set on top of corefit's own environment.
    pub env: BTreeMap<String, String>,
    /// The worker's port (its own, or the public one).
    pub port: u16,
    /// Give it the shared listening socket (`shared`, `inject`).
    pub shared_socket: bool,
    /// Bind a `NOTIFY_SOCKET` for it.
    pub notify: bool,
    /// Open a Node IPC channel for it.
    pub ipc: bool,
    pub ready: ReadyWatch,
    /// Pipe its stdout/stderr through corefit.
    pub pipe_output: bool,
    /// Give it corefit's stdin (a single worker).
    pub inherit_stdin: bool,
}

/// A worker that cannot be launched as configured.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LaunchError {
    #[error("PORT {port} + worker {id} runs past port 65535")]
    PortRange { port: u16, id: WorkerId },
    #[error("no private port was found for worker {0}")]
    NoPrivatePort(WorkerId),
}

/// Decides worker `input.id`'s launch.
pub fn launch_plan(input: &LaunchInput<'_>) -> Result<LaunchPlan, LaunchError> {
    let LaunchInput {
        id,
        desired,
        slots,
        settings,
        cfg,
        worker_env,
        private_port,
    } = *input;
    let strategy = settings.strategy;
    let mut env = worker_env.for_worker(id);
    // After scaling, the count workers are told is the current one.
    env.insert("COREFIT_WORKERS".to_owned(), desired.to_string());
    let port = match strategy {
        SocketStrategy::Proxy => private_port.ok_or(LaunchError::NoPrivatePort(id))?,
        SocketStrategy::None => u16::try_from(id)
            .ok()
            .and_then(|i| cfg.port.checked_add(i))
            .ok_or(LaunchError::PortRange { port: cfg.port, id })?,
        SocketStrategy::Shared | SocketStrategy::Reuseport | SocketStrategy::Inject => cfg.port,
    };
    // One worker, no PORT given: leave the app its own default.
    let pass_through = strategy == SocketStrategy::None && slots == 1 && !cfg.port_given;
    if !pass_through {
        env.insert("PORT".to_owned(), port.to_string());
    }
    if strategy == SocketStrategy::Inject {
        env.insert(crate::inject::ENV_PORT.to_owned(), port.to_string());
        // One socket for all: the shim keeps one worker's shutdown() of it
        // from stopping the others' accepts.
        if cfg.shared_sockets == crate::supervise::net::sockets::SharedSockets::One {
            env.insert("COREFIT_INJECT_SHARED".to_owned(), "one".to_owned());
        }
    }
    let ready = match settings.ready {
        ReadyCheck::Port => {
            ReadyWatch::Port(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
        }
        ReadyCheck::Notify => ReadyWatch::Notify,
        ReadyCheck::Listen => ReadyWatch::Listening,
        _ => ReadyWatch::None,
    };
    Ok(LaunchPlan {
        env,
        port,
        shared_socket: matches!(strategy, SocketStrategy::Shared | SocketStrategy::Inject),
        notify: settings.ready == ReadyCheck::Notify,
        ipc: settings.ready == ReadyCheck::Ipc,
        ready,
        pipe_output: cfg.log_prefix || slots > 1,
        inherit_stdin: slots == 1,
    })
}

impl LaunchPlan {
    /// The `NOTIFY_SOCKET` bound for it.
    pub fn notify_socket(&mut self, path: &Path) {
        self.env
            .insert("NOTIFY_SOCKET".into(), path.display().to_string());
    }

    /// The child's end of its IPC channel, as Node expects it.
    pub fn ipc_channel(&mut self, fd: RawFd) {
        self.env.insert("NODE_CHANNEL_FD".into(), fd.to_string());
        self.env
            .insert("NODE_CHANNEL_SERIALIZATION_MODE".into(), "json".into());
    }
}

/// The preload shim a worker gets, and what for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shim<'a> {
    /// `inject`: its `bind()` takes the socket (no `LISTEN_*`).
    Inject(&'a str),
    /// `shared`: only the handover of connections closed while stopping
    /// (the socket comes as fd 3 with `LISTEN_*`).
    Handover(&'a str),
}

/// The program and arguments that run `program args`: directly, or, with
/// a shared socket `listen_fd`, through `corefit __exec-worker` (`me`),
/// which puts it on fd 3 first (and preloads `shim`).
pub fn argv(
    program: &Path,
    args: &[String],
    listen_fd: Option<RawFd>,
    shim: Option<Shim<'_>>,
    me: &Path,
) -> (PathBuf, Vec<OsString>) {
    let Some(fd) = listen_fd else {
        return (
            program.to_path_buf(),
            args.iter().map(OsString::from).collect(),
        );
    };
    let mut out: Vec<OsString> = vec![
        "__exec-worker".into(),
        "--listen-fd".into(),
        fd.to_string().into(),
    ];
    match shim {
        Some(Shim::Inject(path)) => out.extend(["--inject-preload".into(), path.into()]),
        Some(Shim::Handover(path)) => out.extend(["--preload".into(), path.into()]),
        None => {}
    }
    out.push("--".into());
    out.push(program.into());
    out.extend(args.iter().map(OsString::from));
    (me.to_path_buf(), out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervise::settings::tests::{config, plan, Vars};

    /// Launches worker `id` of a run with these variables and workers.
    fn launch(
        vars: &[(&str, &str)],
        workers: u32,
        id: WorkerId,
        private: Option<u16>,
    ) -> Result<LaunchPlan, LaunchError> {
        let cfg = config(vars);
        let plan = plan(workers);
        let settings = Settings::resolve(&cfg, &plan, false).unwrap();
        launch_plan(&LaunchInput {
            id,
            desired: workers,
            slots: workers as usize,
            settings: &settings,
            cfg: &cfg,
            worker_env: &plan.worker_env,
            private_port: private,
        })
    }

    #[test]
    fn ports_and_environment_by_strategy() {
        // (variables, workers, id, private port) -> (PORT in env, port, shared socket, ready)
        type Case = (
            Vars,
            u32,
            WorkerId,
            Option<u16>,
            (Option<&'static str>, u16, bool, ReadyWatch),
        );
        let lo = |p| ReadyWatch::Port(SocketAddr::from(([127, 0, 0, 1], p)));
        let cases: [Case; 7] = [
            (
                &[],
                3,
                1,
                Some(41000),
                (Some("41000"), 41000, false, lo(41000)),
            ),
            (
                &[("COREFIT_SOCKET", "none"), ("PORT", "8000")],
                3,
                2,
                None,
                (Some("8002"), 8002, false, lo(8002)),
            ),
            // One worker, no PORT given: the app keeps its own default.
            (&[], 1, 0, None, (None, 3000, false, ReadyWatch::None)),
            (
                &[("PORT", "8080")],
                1,
                0,
                None,
                (Some("8080"), 8080, false, ReadyWatch::None),
            ),
            (
                &[("COREFIT_SOCKET", "shared"), ("PORT", "9000")],
                2,
                1,
                None,
                (Some("9000"), 9000, true, ReadyWatch::Listening),
            ),
            (
                &[
                    ("COREFIT_SOCKET", "shared"),
                    ("COREFIT_SHARED_SOCKETS", "one"),
                    ("PORT", "9000"),
                ],
                2,
                1,
                None,
                (Some("9000"), 9000, true, ReadyWatch::None),
            ),
            (
                &[("COREFIT_SOCKET", "reuseport")],
                2,
                0,
                None,
                (Some("3000"), 3000, false, ReadyWatch::None),
            ),
        ];
        for (vars, workers, id, private, (env_port, port, shared, ready)) in cases {
            let p = launch(vars, workers, id, private).unwrap();
            assert_eq!(p.env.get("PORT").map(String::as_str), env_port, "{vars:?}");
            assert_eq!(
                (p.port, p.shared_socket, p.ready),
                (port, shared, ready),
                "{vars:?}"
            );
            assert_eq!(p.env["COREFIT_WORKER_ID"], id.to_string());
            assert_eq!(p.env["COREFIT_WORKERS"], workers.to_string());
            assert_eq!(
                (p.pipe_output, p.inherit_stdin),
                (workers > 1, workers == 1)
            );
        }
    }

    #[test]
    fn descriptors_add_their_names_to_the_environment() {
        let mut p = launch(&[("COREFIT_READY", "notify")], 2, 0, Some(40000)).unwrap();
        assert!(p.notify && !p.ipc && p.ready == ReadyWatch::Notify);
        p.notify_socket(Path::new("/tmp/x/notify-0-1.sock"));
        assert_eq!(p.env["NOTIFY_SOCKET"], "/tmp/x/notify-0-1.sock");
        let mut p = launch(&[("COREFIT_READY", "ipc")], 2, 1, Some(40001)).unwrap();
        assert!(p.ipc && !p.notify && p.ready == ReadyWatch::None);
        p.ipc_channel(7);
        assert_eq!(p.env["NODE_CHANNEL_FD"], "7");
        assert_eq!(p.env["NODE_CHANNEL_SERIALIZATION_MODE"], "json");
        let p = launch(&[("COREFIT_SOCKET", "inject")], 2, 0, None).unwrap();
        assert_eq!(p.env[crate::inject::ENV_PORT], "3000");
        assert!(p.shared_socket);
    }

    #[test]
    fn impossible_ports_are_errors() {
        assert_eq!(launch(&[], 2, 0, None), Err(LaunchError::NoPrivatePort(0)));
        let cfg = config(&[("COREFIT_SOCKET", "none"), ("PORT", "65535")]);
        let plan = plan(1);
        let settings = Settings::resolve(&cfg, &plan, false).unwrap();
        let input = LaunchInput {
            id: 1,
            desired: 2,
            slots: 2,
            settings: &settings,
            cfg: &cfg,
            worker_env: &plan.worker_env,
            private_port: None,
        };
        assert_eq!(
            launch_plan(&input),
            Err(LaunchError::PortRange { port: 65535, id: 1 })
        );
    }

    #[test]
    fn argv_goes_through_exec_worker_with_a_shared_socket() {
        let fd9 = "/proc/self/fd/9";
        let via = |shim: &[&'static str]| {
            let mut a = vec!["__exec-worker", "--listen-fd", "5"];
            a.extend(shim);
            a.extend(["--", "/usr/bin/node", "server.js"]);
            a
        };
        // (listen fd, shim) -> the program run, its arguments
        let cases = [
            (None, None, "/usr/bin/node", vec!["server.js"]),
            (Some(5), None, "/corefit", via(&[])),
            (
                Some(5),
                Some(Shim::Inject(fd9)),
                "/corefit",
                via(&["--inject-preload", fd9]),
            ),
            (
                Some(5),
                Some(Shim::Handover(fd9)),
                "/corefit",
                via(&["--preload", fd9]),
            ),
        ];
        let node = Path::new("/usr/bin/node");
        for (fd, shim, program, want) in cases {
            let (p, a) = argv(
                node,
                &["server.js".to_owned()],
                fd,
                shim,
                Path::new("/corefit"),
            );
            let a: Vec<_> = a.iter().map(|s| s.to_str().unwrap()).collect();
            assert_eq!((p.as_path(), a), (Path::new(program), want), "{shim:?}");
        }
    }
}
