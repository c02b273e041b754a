//! The one loop with side effects: it feeds the [`Supervisor`] events
//! (signals, reaped children, readiness, timers) and performs its actions
//! (spawn, signal a group, route, stop accepting, log, exit).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::{getpid, Pid};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::config::{human_duration, ReadyCheck, RestartPolicy, RunConfig, SocketStrategy};
use super::machine::{Action, Backoff, Event, Policy, Supervisor, WorkerId};
use super::net::proxy::{self, Routes};
use super::net::readiness::{probe_port, IpcChannel, NotifySocket};
use super::net::sockets::{
    free_loopback_port, listen, with_inheritable, SharedSocket, SharedSockets,
};
use super::process::command::resolve_command;
use super::process::oom;
use super::process::reaper::{become_reaper, reap_all, ReaperRole};
use super::process::signals;
use super::process::spawn::{spawn, SpawnSpec};
use super::report::cluster;
use super::report::logs::{prefix, pump_lines, Logger, Stream};
use super::report::sampler::Sampler;
use crate::control::server::ControlCommand;
use crate::control::ScaleCap;
use crate::exit::{self, FAILURE as EXIT_FAILURE};
use crate::observe::ClusterSnapshot;
use crate::plan::{Mode, Plan};

/// Longest wait for proxied connections and log pipes to finish after the
/// last worker is gone.
const DRAIN_LIMIT: Duration = Duration::from_secs(1);

/// Runs `cfg.command` as the plan says until the run ends; returns the exit
/// code.
pub fn run(cfg: &RunConfig, plan: &Plan) -> u8 {
    run_with(cfg, plan, None)
}

/// Live resize: how to re-plan from fresh readings, and whether the
/// worker count may follow (not when it was given explicitly).
pub struct Resize<'a> {
    /// Probes again and plans; `None` when that fails (logged by caller).
    pub replan: &'a dyn Fn() -> Option<Plan>,
    /// Why the count is fixed (e.g. `--workers 4`), if it is.
    pub fixed: Option<String>,
}

impl std::fmt::Debug for Resize<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resize")
            .field("fixed", &self.fixed)
            .finish()
    }
}

/// [`run`], with live resize when `cfg.resize_interval` is set.
pub fn run_with(cfg: &RunConfig, plan: &Plan, resize: Option<Resize<'_>>) -> u8 {
    let logger = Logger {
        format: cfg.log_format,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            logger.error(&format!("cannot start the event loop: {e}"));
            return EXIT_FAILURE;
        }
    };
    rt.block_on(async {
        match Run::prepare(cfg, plan, logger, resize) {
            Ok(run) => run.go().await,
            Err(code) => code,
        }
    })
}

/// Per-worker resources owned by the loop.
#[derive(Debug, Default)]
struct WorkerIo {
    /// The worker's own port (proxy: private loopback; none: base + id).
    port: Option<u16>,
    readiness: Option<JoinHandle<()>>,
}

struct Run<'a> {
    cfg: &'a RunConfig,
    plan: &'a Plan,
    /// The latest plan after a live resize.
    current: Option<Plan>,
    resize: Option<Resize<'a>>,
    logger: Logger,
    program: PathBuf,
    strategy: SocketStrategy,
    ready: ReadyCheck,
    supervisor: Supervisor,
    signals: mpsc::UnboundedReceiver<Signal>,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
    routes: Option<Routes>,
    /// `--max-connections`, resolved (proxy).
    proxy_cap: usize,
    accept_loop: Option<JoinHandle<()>>,
    shared: Option<SharedSocket>,
    notify_dir: Option<tempfile::TempDir>,
    notify_seq: u64,
    /// `inject`: the preload shim in a sealed memfd workers load by path.
    preload: Option<std::os::fd::OwnedFd>,
    /// The `oom_score_adj` each worker gets, above corefit's own.
    worker_oom_adj: Option<i32>,
    io: Vec<WorkerIo>,
    pumps: Vec<JoinHandle<()>>,
    started: Instant,
    sampler: Sampler,
    snapshots: watch::Sender<ClusterSnapshot>,
    surfaces: ops::Surfaces,
    cap: ScaleCap,
}

mod ops;

impl<'a> Run<'a> {
    /// Checks the command, becomes the reaper, installs signal handlers
    /// and opens the sockets. Errors are logged; the `Err` is the exit code.
    fn prepare(
        cfg: &'a RunConfig,
        plan: &'a Plan,
        logger: Logger,
        resize: Option<Resize<'a>>,
    ) -> Result<Run<'a>, u8> {
        let workers = plan.workers.max(1);
        let resize = resize.filter(|_| cfg.resize_interval.is_some());
        // The pool may grow: keep the proxy and restarts even for one worker.
        let may_grow = resize.as_ref().is_some_and(|r| r.fixed.is_none());
        let fail = |msg: String, code: u8| {
            logger.error(&msg);
            code
        };
        let program = resolve_command(
            cfg.command.first().map(String::as_str).unwrap_or(""),
            std::env::var("PATH").ok().as_deref(),
        )
        .map_err(|e| fail(e.to_string(), e.exit_code()))?;

        let strategy = if workers == 1 && cfg.socket == SocketStrategy::Proxy && !may_grow {
            SocketStrategy::None
        } else {
            cfg.socket
        };
        let ready = match cfg.ready {
            ReadyCheck::Auto => match strategy {
                SocketStrategy::Proxy => ReadyCheck::Port,
                SocketStrategy::None if workers > 1 => ReadyCheck::Port,
                _ => ReadyCheck::None,
            },
            other => other,
        };
        let restart = match cfg.restart {
            RestartPolicy::Always => true,
            RestartPolicy::Never => false,
            RestartPolicy::Auto => plan.mode == Mode::Cluster || workers > 1 || may_grow,
        };
        if strategy == SocketStrategy::None && u32::from(cfg.port) + workers - 1 > 65535 {
            return Err(fail(
                format!("PORT {} + {workers} workers runs past port 65535", cfg.port),
                exit::USAGE,
            ));
        }

        let preload = if strategy == SocketStrategy::Inject {
            let command = cfg.command.first().map(String::as_str).unwrap_or("");
            crate::inject::check_command(command, std::env::var("PATH").ok().as_deref())
                .map_err(|e| fail(e.to_string(), exit::USAGE))?;
            Some(crate::inject::preload_memfd().map_err(|e| fail(e.to_string(), EXIT_FAILURE))?)
        } else {
            None
        };

        match become_reaper() {
            ReaperRole::Unavailable(why) => logger.warn(&format!(
                "cannot become child subreaper ({why}); orphans of workers will not be reaped by corefit"
            )),
            ReaperRole::Init | ReaperRole::Subreaper => {}
        }
        // Only when a killed worker is restarted: without restarts its
        // death ends the run as corefit's would.
        let protection = if restart {
            oom::protect_self(std::path::Path::new("/proc"))
        } else {
            oom::Protection::Unchanged("restarts are off".to_owned())
        };
        if let Some(line) = protection.describe() {
            logger.info(&line);
        }
        let signals = signals::listen()
            .map_err(|e| fail(format!("cannot install signal handlers: {e}"), EXIT_FAILURE))?;

        let public = SocketAddr::new(cfg.host, cfg.port);
        let mut routes = None;
        let mut proxy_cap = 0;
        let mut accept_loop = None;
        let mut shared = None;
        match strategy {
            SocketStrategy::Proxy => {
                let listener = listen(public).map_err(|e| fail(e.to_string(), EXIT_FAILURE))?;
                let r = Routes::new(workers as usize);
                let nofile = proxy::limits::raise_nofile();
                if let Some(line) = nofile.describe() {
                    logger.info(&line);
                }
                let cap = proxy::limits::max_connections(cfg.proxy.max_connections, nofile.soft());
                proxy_cap = cap;
                accept_loop = Some(proxy::serve(
                    listener,
                    r.clone(),
                    cfg.proxy.clone(),
                    cap,
                    logger,
                ));
                routes = Some(r);
            }
            SocketStrategy::Shared | SocketStrategy::Inject => {
                shared = Some(
                    SharedSocket::bind(public, cfg.shared_sockets, workers as usize)
                        .map_err(|e| fail(e.to_string(), EXIT_FAILURE))?,
                );
            }
            SocketStrategy::Reuseport | SocketStrategy::None => {}
        }
        let notify_dir = if ready == ReadyCheck::Notify {
            Some(
                tempfile::Builder::new()
                    .prefix(&format!("corefit-{}-", getpid()))
                    .tempdir()
                    .map_err(|e| {
                        fail(
                            format!("cannot create a directory for NOTIFY_SOCKET: {e}"),
                            EXIT_FAILURE,
                        )
                    })?,
            )
        } else {
            None
        };

        let policy = Policy {
            workers,
            restart,
            respawn_limit: cfg.respawn_limit,
            min_uptime: cfg.min_uptime,
            backoff: Backoff {
                initial: cfg.backoff_initial,
                max: cfg.backoff_max,
            },
            grace: cfg.grace,
            ready_timeout: (ready != ReadyCheck::None).then_some(cfg.ready_timeout),
            reload_parallelism: cfg.reload_parallelism,
            replace_in_place: strategy == SocketStrategy::None,
            probe_failures: match (&cfg.liveness, strategy) {
                (Some(l), SocketStrategy::Proxy | SocketStrategy::None) => l.failures,
                _ => 0,
            },
        };
        if cfg.liveness.is_some()
            && !matches!(strategy, SocketStrategy::Proxy | SocketStrategy::None)
        {
            logger.warn(&format!(
                "--liveness-path ignored with --socket {}: workers have no port of their own to probe (use proxy or none)",
                strategy.as_str()
            ));
        }
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let supervisor = Supervisor::new(policy);
        let sampler = Sampler::live();
        let started = Instant::now();
        let (snapshots, snapshot_rx) = watch::channel(cluster::snapshot(
            started,
            started,
            plan,
            strategy.as_str(),
            &supervisor,
            &sampler,
        ));
        let surfaces = ops::open_surfaces(&cfg.control_socket, cfg.admin_addr, snapshot_rx, logger)
            .map_err(|e| fail(e, EXIT_FAILURE))?;
        let mut run = Run {
            cfg,
            plan,
            current: None,
            resize,
            logger,
            program,
            strategy,
            ready,
            supervisor,
            signals,
            events_tx,
            events_rx,
            routes,
            proxy_cap,
            accept_loop,
            shared,
            notify_dir,
            notify_seq: 0,
            preload,
            worker_oom_adj: protection.worker_value(),
            io: (0..workers).map(|_| WorkerIo::default()).collect(),
            pumps: Vec::new(),
            started,
            sampler,
            snapshots,
            surfaces,
            cap: ScaleCap {
                max: workers,
                why: String::new(),
            },
        };
        run.cap = run.cap_from_plan();
        run.announce(public, restart);
        Ok(run)
    }

    fn announce(&self, public: SocketAddr, restart: bool) {
        for w in &self.plan.warnings {
            self.logger.warn(w);
        }
        let n = self.io.len();
        let socket = match self.strategy {
            SocketStrategy::Proxy => format!("proxy on {public}"),
            SocketStrategy::Shared => format!(
                "{} on {public} as fd 3",
                match self.cfg.shared_sockets {
                    SharedSockets::One => "one shared socket",
                    SharedSockets::PerWorker => "a SO_REUSEPORT socket per worker",
                }
            ),
            SocketStrategy::Reuseport => {
                format!("each binds port {} with SO_REUSEPORT", public.port())
            }
            SocketStrategy::Inject => format!(
                "{} on {public}, taken by each app's own bind() through the preload shim",
                match self.cfg.shared_sockets {
                    SharedSockets::One => "one shared socket",
                    SharedSockets::PerWorker => "a SO_REUSEPORT socket per worker",
                }
            ),
            SocketStrategy::None if n == 1 && !self.cfg.port_given => {
                "PORT as the app's environment has it".to_owned()
            }
            SocketStrategy::None if n == 1 => format!("PORT={}", public.port()),
            SocketStrategy::None => {
                format!("PORT={}..{}", public.port(), public.port() as usize + n - 1)
            }
        };
        let why = self.plan.reasons.last().map(String::as_str).unwrap_or("");
        self.logger.info(&format!(
            "{} mode, {n} worker(s) ({socket}; readiness {}; restarts {}; grace {}): {why}",
            self.plan.mode.as_str(),
            match self.ready {
                ReadyCheck::Port => "by port",
                ReadyCheck::Notify => "by NOTIFY_SOCKET",
                ReadyCheck::Ipc => "by process.send('ready')",
                _ => "at start",
            },
            if restart { "on" } else { "off" },
            human_duration(self.cfg.grace),
        ));
    }

    async fn go(mut self) -> u8 {
        let mut queue = VecDeque::from([Event::Start]);
        let mut sampling = tokio::time::interval(self.cfg.memory.interval);
        sampling.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut commands = self.surfaces.commands.take();
        let mut probing = tokio::time::interval(
            self.cfg
                .liveness
                .as_ref()
                .map_or(Duration::from_secs(3600), |l| l.interval),
        );
        probing.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut resizing = tokio::time::interval(
            self.cfg
                .resize_interval
                .filter(|_| self.resize.is_some())
                .unwrap_or(Duration::from_secs(3600)),
        );
        resizing.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The proxy's connection counts change without events: published
        // at least this often.
        let mut refreshing = tokio::time::interval(Duration::from_secs(1));
        refreshing.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            while let Some(event) = queue.pop_front() {
                let actions = self.supervisor.handle(Instant::now(), event);
                for action in actions {
                    if let Action::Exit(code) = action {
                        self.drain().await;
                        return code;
                    }
                    self.perform(action, &mut queue);
                }
            }
            self.publish();
            let deadline = self.supervisor.next_deadline();
            tokio::select! {
                _ = refreshing.tick(), if self.routes.is_some() => {}
                Some(sig) = self.signals.recv() => {
                    if sig == Signal::SIGCHLD {
                        queue.extend(reap_all().into_iter().map(|(pid, reason)| Event::Exited { pid, reason }));
                    } else if matches!(sig, Signal::SIGTTIN | Signal::SIGTTOU) {
                        self.scale_signal(sig, &mut queue);
                    } else {
                        queue.push_back(Event::Signal(sig));
                    }
                }
                Some(event) = self.events_rx.recv() => queue.push_back(event),
                Some(cmd) = recv_command(&mut commands) => self.control(cmd, &mut queue),
                _ = sampling.tick() => self.sample(&mut queue),
                _ = probing.tick() => self.probe_liveness(),
                _ = resizing.tick() => self.resize(&mut queue),
                () = sleep_until(deadline) => {
                    // Reap too, in case a SIGCHLD was coalesced away.
                    queue.extend(reap_all().into_iter().map(|(pid, reason)| Event::Exited { pid, reason }));
                    queue.push_back(Event::Tick);
                }
            }
        }
    }

    fn perform(&mut self, action: Action, queue: &mut VecDeque<Event>) {
        match action {
            Action::Spawn { id } => queue.push_back(self.start_worker(id)),
            Action::SignalGroup { pid, signal } => {
                // ESRCH: the group is already gone, which is fine.
                let _ = killpg(Pid::from_raw(pid), signal);
            }
            Action::Route { id } => {
                if let (Some(routes), Some(port)) = (&self.routes, self.io[id as usize].port) {
                    routes.route(
                        id as usize,
                        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
                    );
                }
            }
            Action::Unroute { id } => {
                if let Some(routes) = &self.routes {
                    routes.unroute(id as usize);
                }
                if let Some(shared) = &mut self.shared {
                    shared.worker_exited(id as usize);
                }
                if let Some(task) = self.io[id as usize].readiness.take() {
                    task.abort();
                }
            }
            Action::StopAccepting => {
                if let Some(task) = self.accept_loop.take() {
                    task.abort();
                }
                if let Some(shared) = &mut self.shared {
                    shared.stop_accepting();
                }
            }
            Action::Notice(notice) => self.logger.notice(&notice),
            Action::Exit(_) => {}
        }
    }

    /// Performs `Spawn`: returns `Spawned` or `SpawnFailed`.
    fn start_worker(&mut self, id: WorkerId) -> Event {
        let failed = |message: String, code: u8| Event::SpawnFailed { id, message, code };
        if id as usize >= self.io.len() {
            self.io.resize_with(id as usize + 1, WorkerIo::default);
        }
        let workers = self.io.len();
        let mut env = self.plan().worker_env.for_worker(id);
        // After scaling, the count workers are told is the current one.
        env.insert(
            "COREFIT_WORKERS".to_owned(),
            self.supervisor.desired().to_string(),
        );
        let port = match self.strategy {
            SocketStrategy::Proxy => match free_loopback_port() {
                Ok(p) => p,
                Err(e) => return failed(e.to_string(), EXIT_FAILURE),
            },
            // Checked in prepare(): cannot overflow.
            SocketStrategy::None => match u16::try_from(id)
                .ok()
                .and_then(|i| self.cfg.port.checked_add(i))
            {
                Some(p) => p,
                None => {
                    return failed(
                        format!("PORT {} + worker {id} runs past port 65535", self.cfg.port),
                        EXIT_FAILURE,
                    )
                }
            },
            SocketStrategy::Shared | SocketStrategy::Reuseport | SocketStrategy::Inject => {
                self.cfg.port
            }
        };
        // One worker, no PORT given: leave the app its own default.
        let pass_through =
            self.strategy == SocketStrategy::None && workers == 1 && !self.cfg.port_given;
        if !pass_through {
            env.insert("PORT".to_owned(), port.to_string());
        }
        if self.strategy == SocketStrategy::Inject {
            env.insert(crate::inject::ENV_PORT.to_owned(), port.to_string());
        }
        self.io[id as usize].port = Some(port);

        let notify = match &self.notify_dir {
            Some(dir) => {
                self.notify_seq += 1;
                match NotifySocket::bind(dir.path(), id, self.notify_seq) {
                    Ok(n) => {
                        env.insert("NOTIFY_SOCKET".into(), n.path().display().to_string());
                        Some(n)
                    }
                    Err(e) => {
                        return failed(format!("cannot bind NOTIFY_SOCKET: {e}"), EXIT_FAILURE)
                    }
                }
            }
            None => None,
        };

        let ipc = if self.ready == ReadyCheck::Ipc {
            match IpcChannel::new() {
                Ok(c) => {
                    env.insert("NODE_CHANNEL_FD".into(), c.child.as_raw_fd().to_string());
                    env.insert("NODE_CHANNEL_SERIALIZATION_MODE".into(), "json".into());
                    Some(c)
                }
                Err(e) => return failed(format!("cannot open an IPC channel: {e}"), EXIT_FAILURE),
            }
        } else {
            None
        };

        let shared_fd = match &mut self.shared {
            Some(shared) => match shared.socket_for(id as usize) {
                Ok(listener) => Some(listener.as_raw_fd()),
                Err(e) => return failed(e.to_string(), EXIT_FAILURE),
            },
            None => None,
        };
        let spec = SpawnSpec {
            program: &self.program,
            args: self.cfg.command.get(1..).unwrap_or(&[]),
            env,
            pipe_output: self.cfg.log_prefix || workers > 1,
            inherit_stdin: workers == 1,
            shared_fd,
            inject_preload: self.preload.as_ref().map(crate::inject::preload_path),
        };
        // The child inherits the shared socket and its IPC end (each made
        // inheritable only for this spawn).
        let with_ipc = || match &ipc {
            Some(c) => with_inheritable(&c.child, || spawn(&spec)),
            None => Ok(spawn(&spec)),
        };
        let spawned = match shared_fd {
            Some(fd) => with_inheritable(&fd, with_ipc).and_then(|r| r),
            None => with_ipc(),
        };
        let spawned = match spawned {
            Ok(r) => r,
            Err(e) => return failed(e.to_string(), EXIT_FAILURE),
        };
        let started = match spawned {
            Ok(s) => s,
            Err(e) => return failed(e.to_string(), e.exit_code()),
        };
        let pid = started.pid;
        if let Some(adj) = self.worker_oom_adj {
            // Raising a child's value needs no privilege. A worker already
            // gone (ESRCH, ENOENT) is reported by its exit.
            let gone = |e: &std::io::Error| {
                e.kind() == std::io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(nix::libc::ESRCH)
            };
            match oom::set_worker(std::path::Path::new("/proc"), pid, adj) {
                Ok(()) => {}
                Err(e) if gone(&e) => {}
                Err(e) => self.logger.warn(&format!(
                    "worker {id} (pid {pid}): cannot set its oom_score_adj to {adj}: {e}"
                )),
            }
        }
        let pfx = prefix(self.cfg.log_prefix, id);
        if let Some(out) = started.stdout {
            self.pump(out.into(), Stream::Stdout, pfx.clone());
        }
        if let Some(err) = started.stderr {
            self.pump(err.into(), Stream::Stderr, pfx);
        }
        if let Some(IpcChannel { parent, child }) = ipc {
            drop(child);
            match IpcChannel::watch(parent, id, pid, self.events_tx.clone()) {
                // Not aborted with the worker's other checks: it ends when
                // the worker's end closes.
                Ok(task) => self.pumps.push(task),
                Err(e) => self
                    .logger
                    .warn(&format!("worker {id}: cannot read its IPC channel: {e}")),
            }
        }
        let task = match (self.ready, notify) {
            (ReadyCheck::Notify, Some(n)) => Some(n.watch(id, pid, self.events_tx.clone())),
            (ReadyCheck::Port, _) => Some(probe_port(
                id,
                pid,
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
                self.events_tx.clone(),
            )),
            _ => None,
        };
        if let Some(old) = std::mem::replace(&mut self.io[id as usize].readiness, task) {
            old.abort();
        }
        Event::Spawned { id, pid }
    }

    fn pump(&mut self, fd: std::os::fd::OwnedFd, stream: Stream, pfx: String) {
        match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
            Ok(rx) => {
                self.pumps.retain(|p| !p.is_finished());
                self.pumps.push(tokio::spawn(pump_lines(rx, stream, pfx)));
            }
            Err(e) => self
                .logger
                .warn(&format!("cannot read a worker's output: {e}")),
        }
    }

    /// After the last worker: let proxied connections and log pipes finish,
    /// for at most [`DRAIN_LIMIT`].
    async fn drain(&mut self) {
        let until = tokio::time::Instant::now() + DRAIN_LIMIT;
        if let Some(routes) = &self.routes {
            while routes.open_connections() > 0 && tokio::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        for pump in self.pumps.drain(..) {
            let _ = tokio::time::timeout_at(until, pump).await;
        }
        self.notify_dir = None;
        for task in self.surfaces.tasks.drain(..) {
            task.abort();
        }
        if let Some(path) = self.surfaces.control_path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

async fn recv_command(
    commands: &mut Option<mpsc::Receiver<ControlCommand>>,
) -> Option<ControlCommand> {
    match commands {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
