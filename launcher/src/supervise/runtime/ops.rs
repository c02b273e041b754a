//! The runtime's operating surface: the control socket's commands, the
//! SIGTTIN/SIGTTOU scaling signals, the admin endpoint's snapshots and
//! the memory sampling.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Instant;

use nix::sys::signal::Signal;
use tokio::sync::{mpsc, watch};

use super::Run;
use crate::control::protocol::{Request, Response};
use crate::control::scale::ScaleTarget;
use crate::control::server::{self, ControlCommand};
use crate::observe::ClusterSnapshot;
use crate::plan::size::human_bytes;
use crate::plan::Plan;
use crate::probe::procstat::all_processes;
use crate::supervise::config::MemoryCeiling;
use crate::supervise::machine::admission::{scale_cap, ReloadAdmitted};
use crate::supervise::machine::{Event, Level, ProcessState};
use crate::supervise::report::cluster::{plan_memory_budget, snapshot};
use crate::supervise::report::logs::Logger;
use crate::supervise::report::sampler::Finding;

/// The control socket and the admin endpoint, once started.
#[derive(Debug, Default)]
pub(super) struct Surfaces {
    pub commands: Option<mpsc::Receiver<ControlCommand>>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The control socket file, removed at exit.
    pub control_path: Option<std::path::PathBuf>,
}

/// Binds the control socket (a warning, not a failure, when it cannot:
/// another corefit may own the default path) and the admin endpoint (a
/// failure: it was asked for explicitly). Must run inside the runtime.
pub(super) fn open_surfaces(
    control_path: &Path,
    admin: Option<std::net::SocketAddr>,
    snapshots: watch::Receiver<ClusterSnapshot>,
    logger: Logger,
) -> Result<Surfaces, String> {
    let mut s = Surfaces::default();
    match server::bind(control_path) {
        Ok(listener) => {
            let (tx, rx) = mpsc::channel(16);
            s.tasks.push(tokio::spawn(server::serve(listener, tx)));
            s.commands = Some(rx);
            s.control_path = Some(control_path.to_owned());
        }
        Err(e) => logger.warn(&format!(
            "control socket {} disabled: {e} (`corefit status/reload/scale/stop` will not reach this corefit; signals still work)",
            control_path.display()
        )),
    }
    if let Some(addr) = admin {
        let listener = std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(tokio::net::TcpListener::from_std)
            .map_err(|e| format!("cannot listen on --admin-addr {addr}: {e}"))?;
        s.tasks
            .push(tokio::spawn(crate::admin::serve(listener, snapshots)));
    }
    Ok(s)
}

impl Run<'_> {
    /// The plan in force: the latest live resize's, else the first.
    pub(super) fn plan(&self) -> &Plan {
        self.current.as_ref().unwrap_or(self.plan)
    }

    /// Live resize: probes and plans again; when the CPU or memory limit
    /// changed, the new plan is in force and the pool grows or shrinks to
    /// its count (unless the count was given, or a reload runs: then the
    /// next tick tries again).
    pub(super) fn resize(&mut self, queue: &mut VecDeque<Event>) {
        let Some(r) = &self.resize else { return };
        if self.cfg.resize_interval.is_none() || !self.supervisor.accepting_commands() {
            return;
        }
        let Some(new) = (r.replan)() else { return };
        let old = self.plan();
        let limits_changed = new.effective_cpus.value != old.effective_cpus.value
            || new.memory.as_ref().map(|m| m.value) != old.memory.as_ref().map(|m| m.value);
        if limits_changed {
            let mem = |p: &Plan| {
                p.memory
                    .as_ref()
                    .map_or("unlimited".to_owned(), |m| human_bytes(m.value))
            };
            self.logger.info(&format!(
                "limits changed: CPUs {} -> {}, memory {} -> {}; the plan now says {} worker(s){}",
                old.effective_cpus.value,
                new.effective_cpus.value,
                mem(old),
                mem(&new),
                new.workers,
                r.fixed
                    .as_ref()
                    .map(|f| format!(" (the count stays: {f})"))
                    .unwrap_or_default()
            ));
            self.current = Some(new);
            self.cap = self.cap_from_plan();
        }
        let want = self.plan().workers.max(1);
        if let Some(n) = self.supervisor.admit_resize(want, r.fixed.is_some()) {
            queue.push_back(Event::Scale { workers: n });
        }
    }

    /// The snapshot now.
    pub(super) fn snapshot(&self) -> ClusterSnapshot {
        let mut s = snapshot(
            Instant::now(),
            self.started,
            self.plan(),
            self.strategy.as_str(),
            &self.supervisor,
            &self.sampler,
        );
        s.proxy = self.routes.as_ref().map(|r| crate::observe::ProxySnapshot {
            open: r.open_connections() as u64,
            refused: r.refused_connections(),
            max: self.proxy_cap as u64,
        });
        s
    }

    /// Publishes the snapshot for the admin endpoint.
    pub(super) fn publish(&self) {
        let s = self.snapshot();
        self.snapshots.send_if_modified(|old| {
            if *old == s {
                false
            } else {
                *old = s;
                true
            }
        });
    }

    /// The memory ceiling per worker, if any.
    pub(super) fn ceiling(&self) -> Option<u64> {
        match self.cfg.memory.ceiling {
            MemoryCeiling::Off => None,
            MemoryCeiling::Plan => Some(plan_memory_budget(self.plan())),
            MemoryCeiling::Bytes(b) => Some(b),
        }
    }

    /// SIGTTIN (+1) and SIGTTOU (-1), within the plan's caps.
    pub(super) fn scale_signal(&mut self, sig: Signal, queue: &mut VecDeque<Event>) {
        let delta = if sig == Signal::SIGTTIN { 1 } else { -1 };
        match self.scale_to(ScaleTarget::Delta(delta), false) {
            Ok(Some(n)) => queue.push_back(Event::Scale { workers: n }),
            Ok(None) => {}
            Err(e) => self.logger.warn(&format!("{} ignored: {e}", sig.as_str())),
        }
    }

    /// The new count for a scale request, or why not (the rules are the
    /// machine's, [`crate::supervise::machine::admission`]).
    fn scale_to(&self, target: ScaleTarget, force: bool) -> Result<Option<u32>, String> {
        self.supervisor
            .admit_scale(target, force, &self.cap, self.single_port_only())
            .map_err(|e| e.to_string())
    }

    /// One worker with `--socket none` and no PORT given: a second worker
    /// would fight the first for the app's own port.
    fn single_port_only(&self) -> bool {
        self.strategy == super::SocketStrategy::None && !self.cfg.port_given
    }

    /// Answers a control command (reload and scale answer when accepted).
    pub(super) fn control(&mut self, cmd: ControlCommand, queue: &mut VecDeque<Event>) {
        let response = match cmd.request {
            Request::Status => Response::snapshot(self.snapshot()),
            Request::Reload => match self.supervisor.admit_reload() {
                Ok(admitted) => {
                    queue.push_back(Event::Reload);
                    Response::ok(match admitted {
                        ReloadAdmitted::Queued => {
                            "a reload is in progress; one more round will follow it".to_owned()
                        }
                        ReloadAdmitted::Starts { workers, parallel } => format!(
                            "rolling reload of {workers} worker(s) started, {parallel} at a time"
                        ),
                    })
                }
                Err(e) => Response::error(e.to_string()),
            },
            Request::Scale { target, force } => match self.scale_to(target, force) {
                Ok(Some(n)) => {
                    queue.push_back(Event::Scale { workers: n });
                    Response::ok(format!(
                        "scaling from {} to {n} worker(s)",
                        self.supervisor.desired()
                    ))
                }
                Ok(None) => Response::ok(format!(
                    "already at {} worker(s)",
                    self.supervisor.desired()
                )),
                Err(e) => Response::error(e),
            },
            Request::Stop => {
                queue.push_back(Event::Signal(Signal::SIGTERM));
                Response::ok("stopping")
            }
        };
        let _ = cmd.reply.send(response);
    }

    /// Samples every worker's tree; reports, warns, and asks the
    /// supervisor to replace workers above the ceiling.
    pub(super) fn sample(&mut self, queue: &mut VecDeque<Event>) {
        let procs = all_processes(Path::new("/"));
        let views = self.supervisor.processes();
        let pids: Vec<i32> = views.iter().filter_map(|p| p.pid).collect();
        self.sampler.sample(Instant::now(), &procs, &pids);
        let id_of = |pid: i32| views.iter().find(|p| p.pid == Some(pid)).map(|p| p.id);
        if self.cfg.memory.report {
            let mut total = 0;
            let mut parts = Vec::new();
            for v in &views {
                if let Some(s) = v.pid.and_then(|pid| self.sampler.get(pid)) {
                    total += s.rss_bytes;
                    parts.push(format!(
                        "worker {} pid {} {}{}",
                        v.id,
                        v.pid.unwrap_or(0),
                        human_bytes(s.rss_bytes),
                        s.cpu_percent
                            .map(|c| format!(" {c:.1}% cpu"))
                            .unwrap_or_default()
                    ));
                }
            }
            self.logger.info(&format!(
                "memory: {} total; {}",
                human_bytes(total),
                parts.join(", ")
            ));
        }
        let ceiling = self.ceiling();
        for f in self
            .sampler
            .findings(self.cfg.memory.threshold_bytes, ceiling)
        {
            match f {
                Finding::AboveThreshold { pid, rss_bytes } => self.logger.log(
                    Level::Warn,
                    &format!(
                        "worker {} (pid {pid}) uses {}, above the memory threshold of {}",
                        id_of(pid).map_or("?".to_owned(), |i| i.to_string()),
                        human_bytes(rss_bytes),
                        human_bytes(self.cfg.memory.threshold_bytes.unwrap_or(0))
                    ),
                ),
                Finding::AboveCeiling { pid, rss_bytes } => {
                    if let (Some(id), Some(limit)) = (id_of(pid), ceiling) {
                        queue.push_back(Event::MemoryExceeded {
                            id,
                            pid,
                            rss_bytes,
                            limit_bytes: limit,
                        });
                    }
                }
            }
        }
    }

    /// Starts one liveness probe per ready worker with a port of its own;
    /// each reports `Event::Probe`.
    pub(super) fn probe_liveness(&self) {
        let Some(l) = &self.cfg.liveness else { return };
        if !matches!(
            self.strategy,
            super::SocketStrategy::Proxy | super::SocketStrategy::None
        ) {
            return;
        }
        for v in self.supervisor.processes() {
            let (Some(pid), ProcessState::Ready) = (v.pid, v.state) else {
                continue;
            };
            let Some(port) = self.io.get(v.id as usize).and_then(|io| io.port) else {
                continue;
            };
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let events = self.events_tx.clone();
            let (path, timeout, id) = (l.path.clone(), l.timeout, v.id);
            tokio::spawn(async move {
                let ok = http_probe(addr, &path, timeout).await;
                let _ = events.send(Event::Probe { id, pid, ok });
            });
        }
    }

    /// Derived once: the cap scaling stays within.
    pub(super) fn cap_from_plan(&self) -> crate::control::ScaleCap {
        scale_cap(self.plan())
    }
}

/// `GET path` on `addr`: true on a 2xx or 3xx status line within `timeout`.
pub(super) async fn http_probe(
    addr: std::net::SocketAddr,
    path: &str,
    timeout: std::time::Duration,
) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: corefit-liveness\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.ok()?;
        Some(head)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Some(head)) => head.starts_with(b"HTTP/1.") && matches!(head[9], b'2' | b'3'),
        _ => false,
    }
}
