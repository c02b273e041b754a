//! Setting a run up, one effect per step, in this order: check the
//! command (127/126), resolve the [`Settings`] (pure), the `inject` shim,
//! the reaper role, OOM scores, signal handlers, the public socket(s),
//! the `NOTIFY_SOCKET` directory, the control and admin surfaces; then
//! say what runs. Each failure is logged and becomes the exit code.

use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::unistd::getpid;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::control::open_surfaces;
use super::{Resize, Run, WorkerIo};
use crate::exit;
use crate::plan::Plan;
use crate::supervise::config::{ReadyCheck, RunConfig, SocketStrategy};
use crate::supervise::machine::admission::scale_cap;
use crate::supervise::machine::Supervisor;
use crate::supervise::net::proxy::{self, Routes};
use crate::supervise::net::sockets::{listen, SharedSocket};
use crate::supervise::process::command::resolve_command;
use crate::supervise::process::oom;
use crate::supervise::process::reaper::{become_reaper, ReaperRole};
use crate::supervise::process::signals;
use crate::supervise::report::cluster;
use crate::supervise::report::logs::Logger;
use crate::supervise::report::sampler::Sampler;
use crate::supervise::resize::Resizer;
use crate::supervise::settings::Settings;

/// A failed step: the message to log and the exit code.
type Failed = (String, u8);

fn failure(code: u8) -> impl Fn(String) -> Failed {
    move |msg| (msg, code)
}

/// The public side of the socket strategy.
#[derive(Default)]
pub(super) struct Public {
    pub routes: Option<Routes>,
    /// `--max-connections`, resolved (proxy).
    pub proxy_cap: usize,
    pub accept_loop: Option<JoinHandle<()>>,
    pub shared: Option<SharedSocket>,
}

impl<'a> Run<'a> {
    /// Sets the run up. Errors are logged; the `Err` is the exit code.
    pub(super) fn prepare(
        cfg: &'a RunConfig,
        plan: &'a Plan,
        logger: Logger,
        resize: Option<Resize<'a>>,
    ) -> Result<Run<'a>, u8> {
        Run::steps(cfg, plan, logger, resize).map_err(|(msg, code)| {
            logger.error(&msg);
            code
        })
    }

    fn steps(
        cfg: &'a RunConfig,
        plan: &'a Plan,
        logger: Logger,
        resize: Option<Resize<'a>>,
    ) -> Result<Run<'a>, Failed> {
        let resize = resize.filter(|_| cfg.resize_interval.is_some());
        let may_grow = resize.as_ref().is_some_and(|r| r.fixed.is_none());
        let program = check_command(cfg)?;
        let settings =
            Settings::resolve(cfg, plan, may_grow).map_err(|e| (e.to_string(), e.exit_code()))?;
        let (preload, listen_first) = preload_shim(cfg, &settings, logger)?;
        reap_orphans(logger);
        let protection = protect_from_oom(settings.restart, logger);
        let signals = signals::listen().map_err(|e| {
            (
                format!("cannot install signal handlers: {e}"),
                exit::FAILURE,
            )
        })?;
        let public = open_public(cfg, &settings, listen_first, logger)?;
        let notify_dir = notify_dir(&settings)?;
        for w in &settings.warnings {
            logger.warn(w);
        }
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let supervisor = Supervisor::new(settings.policy.clone());
        let sampler = Sampler::live();
        let started = Instant::now();
        let strategy = settings.strategy.as_str();
        let first = cluster::snapshot(started, started, plan, strategy, &supervisor, &sampler);
        let (snapshots, snapshot_rx) = watch::channel(first);
        let surfaces = open_surfaces(&cfg.control_socket, cfg.admin_addr, snapshot_rx, logger)
            .map_err(failure(exit::FAILURE))?;
        for w in &plan.warnings {
            logger.warn(w);
        }
        logger.info(&settings.announcement(cfg, plan));
        Ok(Run {
            cfg,
            plan,
            current: None,
            resize,
            resizer: Resizer::new(cfg.resize_interval.unwrap_or_default()),
            logger,
            program,
            io: (0..settings.workers).map(|_| WorkerIo::default()).collect(),
            settings,
            supervisor,
            signals,
            events_tx,
            events_rx,
            public,
            notify_dir,
            notify_seq: 0,
            preload,
            worker_oom_adj: protection.worker_value(),
            relay: None,
            stop_flags: Default::default(),
            stopping_all: false,
            pumps: Vec::new(),
            started,
            sampler,
            snapshots,
            surfaces,
            cap: scale_cap(plan),
        })
    }
}

/// 127 when the command does not exist, 126 when it cannot run.
fn check_command(cfg: &RunConfig) -> Result<PathBuf, Failed> {
    resolve_command(
        cfg.command.first().map(String::as_str).unwrap_or(""),
        std::env::var("PATH").ok().as_deref(),
    )
    .map_err(|e| (e.to_string(), e.exit_code()))
}

/// The preload shim, in a sealed memfd, and whether the workers' own
/// sockets must be listening before the spawn.
///
/// `inject`: the command must be able to load it (refused otherwise).
/// `shared` (with `--handover auto`): loaded when the command can, only
/// for the handover of what a stopping worker closes; a Go program gets
/// listening sockets (Go's `net.FileListener` never calls `listen()`).
fn preload_shim(
    cfg: &RunConfig,
    settings: &Settings,
    logger: Logger,
) -> Result<(Option<std::os::fd::OwnedFd>, bool), Failed> {
    let command = cfg.command.first().map(String::as_str).unwrap_or("");
    let path = std::env::var("PATH").ok();
    let memfd = || crate::inject::preload_memfd().map_err(|e| (e.to_string(), exit::FAILURE));
    match settings.strategy {
        SocketStrategy::Inject => {
            crate::inject::check_command(command, path.as_deref())
                .map_err(|e| (e.to_string(), exit::USAGE))?;
            Ok((Some(memfd()?), false))
        }
        SocketStrategy::Shared => {
            let go =
                crate::probe::executable::inspect(command, path.as_deref()).is_ok_and(|exe| exe.go);
            if cfg.handover == crate::supervise::config::Handover::Off {
                return Ok((None, go));
            }
            match crate::inject::check_command(command, path.as_deref()) {
                Ok(_) => Ok((Some(memfd()?), go)),
                Err(why) => {
                    logger.info(&format!(
                        "shared: no handover of the connections a stopping worker closes between requests (their next request fails during a reload): {why}"
                    ));
                    Ok((None, go))
                }
            }
        }
        _ => Ok((None, false)),
    }
}

fn reap_orphans(logger: Logger) {
    match become_reaper() {
        ReaperRole::Unavailable(why) => logger.warn(&format!(
            "cannot become child subreaper ({why}); orphans of workers will not be reaped by corefit"
        )),
        ReaperRole::Init | ReaperRole::Subreaper => {}
    }
}

/// Only when a killed worker is restarted: without restarts its death
/// ends the run as corefit's would.
fn protect_from_oom(restart: bool, logger: Logger) -> oom::Protection {
    let protection = if restart {
        oom::protect_self(Path::new("/proc"))
    } else {
        oom::Protection::Unchanged("restarts are off".to_owned())
    };
    if let Some(line) = protection.describe() {
        logger.info(&line);
    }
    protection
}

/// `proxy`: listen and serve; `shared`, `inject`: bind the socket(s)
/// workers inherit; otherwise nothing.
fn open_public(
    cfg: &RunConfig,
    settings: &Settings,
    listen_first: bool,
    logger: Logger,
) -> Result<Public, Failed> {
    let workers = settings.workers as usize;
    let mut public = Public::default();
    match settings.strategy {
        SocketStrategy::Proxy => {
            let listener = listen(settings.public).map_err(|e| (e.to_string(), exit::FAILURE))?;
            let routes = Routes::new(workers);
            let nofile = proxy::limits::raise_nofile();
            if let Some(line) = nofile.describe() {
                logger.info(&line);
            }
            let cap = proxy::limits::max_connections(cfg.proxy.max_connections, nofile.soft());
            public.proxy_cap = cap;
            public.accept_loop = Some(proxy::serve(
                listener,
                routes.clone(),
                cfg.proxy.clone(),
                cap,
                logger,
            ));
            public.routes = Some(routes);
        }
        SocketStrategy::Shared | SocketStrategy::Inject => {
            if cfg.shared_sockets == crate::supervise::net::sockets::SharedSockets::PerWorker {
                let migrate =
                    crate::supervise::net::sockets::migrate_req(std::path::Path::new("/"));
                if let Some(line) = crate::supervise::net::sockets::migrate_req_advice(migrate) {
                    logger.info(line);
                }
            }
            public.shared = Some(
                SharedSocket::bind(settings.public, cfg.shared_sockets, listen_first)
                    .map_err(|e| (e.to_string(), exit::FAILURE))?,
            );
        }
        SocketStrategy::Reuseport | SocketStrategy::None => {}
    }
    Ok(public)
}

/// The directory each worker's `NOTIFY_SOCKET` is bound in.
fn notify_dir(settings: &Settings) -> Result<Option<tempfile::TempDir>, Failed> {
    if settings.ready != ReadyCheck::Notify {
        return Ok(None);
    }
    tempfile::Builder::new()
        .prefix(&format!("corefit-{}-", getpid()))
        .tempdir()
        .map(Some)
        .map_err(|e| {
            (
                format!("cannot create a directory for NOTIFY_SOCKET: {e}"),
                exit::FAILURE,
            )
        })
}
