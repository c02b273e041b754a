//! The runtime's operating surface: the control socket's commands, the
//! SIGTTIN/SIGTTOU scaling signals, live resize, and the admin endpoint's
//! snapshots. Whether a request is taken is the machine's
//! [`admission`](crate::supervise::machine::admission).

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
use crate::plan::Plan;
use crate::supervise::config::SocketStrategy;
use crate::supervise::machine::admission::{scale_cap, ReloadAdmitted};
use crate::supervise::machine::Event;
use crate::supervise::report::cluster::snapshot;
use crate::supervise::report::logs::Logger;

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

    /// Live resize: probes and plans again; once the CPU or memory limit
    /// changed and held ([`crate::supervise::resize`]'s hysteresis), the
    /// new plan is in force: the pool grows or shrinks to its count
    /// (unless the count was given) and the workers started under the old
    /// environment are replaced as in a rolling reload. While a reload
    /// runs, the next tick asks again.
    pub(super) fn resize(&mut self, queue: &mut VecDeque<Event>) {
        let Some(r) = &self.resize else { return };
        if self.cfg.resize_interval.is_none() || !self.supervisor.accepting_commands() {
            return;
        }
        let Some(fresh) = (r.replan)() else { return };
        let fixed = r.fixed.clone();
        let in_force = self.current.as_ref().unwrap_or(self.plan);
        if let Some(applied) = self.resizer.tick(Instant::now(), in_force, fresh) {
            self.logger.info(&format!(
                "limits changed: {}; the plan now says {} worker(s){}",
                applied.changes,
                applied.plan.workers,
                fixed
                    .as_ref()
                    .map(|f| format!(" (the count stays: {f})"))
                    .unwrap_or_default()
            ));
            self.current = Some(applied.plan);
            self.cap = scale_cap(self.plan());
        }
        let want = self.plan().workers.max(1);
        let env = self.resizer.env();
        if let Some(event) = self
            .supervisor
            .admit_live_resize(want, env, fixed.is_some())
        {
            queue.push_back(event);
        }
    }

    /// The snapshot now.
    pub(super) fn snapshot(&self) -> ClusterSnapshot {
        let mut s = snapshot(
            Instant::now(),
            self.started,
            self.plan(),
            self.settings.strategy.as_str(),
            &self.supervisor,
            &self.sampler,
        );
        s.proxy = self
            .public
            .routes
            .as_ref()
            .map(|r| crate::observe::ProxySnapshot {
                open: r.open_connections() as u64,
                refused: r.refused_connections(),
                max: self.public.proxy_cap as u64,
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
        self.settings.strategy == SocketStrategy::None && !self.cfg.port_given
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
}
