//! The one loop with side effects: it feeds the [`Supervisor`] events
//! (signals, reaped children, readiness, timers, control commands) and
//! performs its actions (spawn, signal a group, route, stop accepting,
//! notices, exit).
//!
//! - `setup.rs`: `Run::prepare`, one effect per step, from the pure
//!   `Settings` (`supervise::settings`).
//! - `worker.rs`: `Spawn`, executing the pure launch plan.
//! - `control.rs`: the control socket's commands, scaling signals, live
//!   resize, snapshots (the rules are the machine's admission).
//! - `monitor.rs`: memory sampling and liveness probes.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::config::RunConfig;
use super::machine::{Action, Event, Supervisor};
use super::process::reaper::reap_all;
use super::report::logs::Logger;
use super::report::sampler::Sampler;
use super::settings::Settings;
use crate::control::server::ControlCommand;
use crate::control::ScaleCap;
use crate::exit;
use crate::observe::ClusterSnapshot;
use crate::plan::Plan;

mod control;
mod monitor;
mod setup;
mod worker;

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
            return exit::FAILURE;
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
    /// When a resize's new plan is put in force (hysteresis).
    resizer: crate::supervise::resize::Resizer,
    logger: Logger,
    program: PathBuf,
    settings: Settings,
    supervisor: Supervisor,
    signals: mpsc::UnboundedReceiver<Signal>,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
    public: setup::Public,
    notify_dir: Option<tempfile::TempDir>,
    notify_seq: u64,
    /// `inject`: the preload shim in a sealed memfd workers load by path.
    preload: Option<std::os::fd::OwnedFd>,
    /// The `oom_score_adj` each worker gets, above corefit's own.
    worker_oom_adj: Option<i32>,
    /// `--affinity`: the socket.io relay between Node workers, once one
    /// started (`worker.rs`).
    relay: Option<super::ipc::Hub>,
    /// `inject`: each worker process's stop flag, by pid, raised (and
    /// dropped) when corefit stops that process while the run goes on.
    stop_flags: std::collections::HashMap<i32, crate::supervise::net::handover::StopFlag>,
    /// corefit is stopping every worker (no handover: nobody is left).
    stopping_all: bool,
    io: Vec<WorkerIo>,
    pumps: Vec<JoinHandle<()>>,
    started: Instant,
    sampler: Sampler,
    snapshots: watch::Sender<ClusterSnapshot>,
    surfaces: control::Surfaces,
    cap: ScaleCap,
}

impl<'a> Run<'a> {
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
                if let Event::Exited { pid, .. } = &event {
                    self.stop_flags.remove(pid);
                }
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
                _ = refreshing.tick(), if self.public.routes.is_some() => {}
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
                // Stopping one worker while the others serve: what it
                // closes unread comes to corefit. Not when all stop.
                if let Some(flag) = self.stop_flags.remove(&pid) {
                    if !self.stopping_all && signal != Signal::SIGKILL {
                        flag.raise();
                    }
                }
                // ESRCH: the group is already gone, which is fine.
                let _ = killpg(Pid::from_raw(pid), signal);
            }
            Action::Route { id } => {
                if let (Some(routes), Some(port)) = (&self.public.routes, self.io[id as usize].port)
                {
                    routes.route(
                        id as usize,
                        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
                    );
                }
            }
            Action::Unroute { id } => {
                if let Some(routes) = &self.public.routes {
                    routes.unroute(id as usize);
                }

                if let Some(task) = self.io[id as usize].readiness.take() {
                    task.abort();
                }
            }
            Action::StopAccepting => {
                self.stopping_all = true;
                if let Some(task) = self.public.accept_loop.take() {
                    task.abort();
                }
                if let Some(shared) = &mut self.public.shared {
                    shared.stop_accepting();
                }
            }
            Action::Notice(notice) => self.logger.notice(&notice),
            Action::Exit(_) => {}
        }
    }

    /// After the last worker: let proxied connections and log pipes finish,
    /// for at most [`DRAIN_LIMIT`].
    async fn drain(&mut self) {
        let until = tokio::time::Instant::now() + DRAIN_LIMIT;
        if let Some(routes) = &self.public.routes {
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
