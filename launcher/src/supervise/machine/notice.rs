//! What the machine has to say, as data: one [`Notice`] per thing that
//! happened, with its fields (worker id, pid, exit reason, durations).
//! The runtime's logger renders it (`report::notice`): the same sentence
//! as text, and that sentence plus these fields as a JSON line.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Serialize, Serializer};

use super::{Level, WorkerId};
use crate::exit::ExitReason;

/// Why a worker's process was started again (the `reason` label of the
/// restart counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Restart {
    /// It exited on its own.
    Crash,
    /// A rolling reload replaced it.
    Reload,
    /// It used more memory than its ceiling.
    Memory,
    /// It failed its liveness probes.
    Unresponsive,
    /// A live resize changed the environment it was started with.
    Resize,
}

impl Restart {
    pub fn as_str(self) -> &'static str {
        match self {
            Restart::Crash => "crash",
            Restart::Reload => "reload",
            Restart::Memory => "memory",
            Restart::Unresponsive => "unresponsive",
            Restart::Resize => "resize",
        }
    }
}

/// Something worth telling the operator. Durations serialize as
/// milliseconds (`after_ms`, `uptime_ms`...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Notice {
    /// A worker's process started (`restarts` so far).
    Started {
        worker: WorkerId,
        pid: i32,
        restarts: u32,
    },
    /// A worker passed its readiness check.
    Ready {
        worker: WorkerId,
        pid: i32,
        #[serde(rename = "after_ms", serialize_with = "millis")]
        after: Duration,
    },
    /// A worker missed its readiness deadline; it is killed.
    NotReady {
        worker: WorkerId,
        pid: i32,
        #[serde(rename = "after_ms", serialize_with = "millis")]
        after: Duration,
    },
    /// A worker exited and restarts are off: the run ends.
    Exited {
        worker: WorkerId,
        pid: i32,
        reason: ExitReason,
        #[serde(rename = "uptime_ms", serialize_with = "millis")]
        uptime: Duration,
    },
    /// A worker exited and is restarted after `delay`; it crashed
    /// `in_a_row` times in a row (0: after a run as long as the window),
    /// `limit` allowed (see `backoff`).
    Restarting {
        worker: WorkerId,
        pid: i32,
        reason: ExitReason,
        #[serde(rename = "uptime_ms", serialize_with = "millis")]
        uptime: Duration,
        #[serde(rename = "delay_ms", serialize_with = "millis")]
        delay: Duration,
        in_a_row: u32,
        limit: u32,
    },
    /// A worker crashed `failures` times in a row, each before it was
    /// ready or less than `window` after: the run ends.
    RespawnLimit {
        worker: WorkerId,
        pid: i32,
        reason: ExitReason,
        failures: u32,
        /// The last crash came after readiness (else before it).
        ready: bool,
        #[serde(rename = "window_ms", serialize_with = "millis")]
        window: Duration,
        limit: u32,
    },
    /// A worker exited 126 or 127 (the shell's "cannot execute" and "not
    /// found") before any worker was ready: the command cannot run as
    /// given, restarting it would not help; the run ends with `reason`'s
    /// code.
    CannotRun {
        worker: WorkerId,
        pid: i32,
        reason: ExitReason,
    },
    /// A worker could not be started: the run ends with `code`.
    SpawnFailed {
        worker: WorkerId,
        message: String,
        code: u8,
    },
    /// SIGTERM or SIGINT: a graceful stop of `workers` workers begins.
    StopRequested {
        #[serde(serialize_with = "signal_name")]
        signal: Signal,
        workers: usize,
        #[serde(rename = "grace_ms", serialize_with = "millis")]
        grace: Duration,
    },
    /// A worker obeyed the stop.
    Stopped {
        worker: WorkerId,
        pid: i32,
        reason: ExitReason,
    },
    /// A worker ended otherwise than the stop asked.
    FailedWhileStopping {
        worker: WorkerId,
        pid: i32,
        reason: ExitReason,
    },
    /// A worker outlived the grace period of the stop: SIGKILL.
    KilledAfterGrace {
        worker: WorkerId,
        pid: i32,
        #[serde(rename = "grace_ms", serialize_with = "millis")]
        grace: Duration,
        #[serde(serialize_with = "signal_name")]
        signal: Signal,
    },
    /// The run is over.
    AllStopped {
        code: u8,
    },
    /// A rolling reload of `workers`, `parallel` at a time.
    ReloadStarted {
        workers: usize,
        parallel: u32,
    },
    /// After a live resize, `workers` run with an older plan's
    /// environment: replaced as in a rolling reload, `parallel` at a time.
    Refreshing {
        workers: usize,
        parallel: u32,
    },
    /// A reload asked for during a reload: one more round follows.
    ReloadQueued,
    /// A worker not running and ready is left out of the reload.
    ReloadSkipped {
        worker: WorkerId,
    },
    ReloadComplete {
        replaced: u32,
    },
    ReloadCancelled,
    /// A replacement failed: the reload stops, `worker` keeps `kept`.
    ReloadAborted {
        worker: WorkerId,
        kept: Option<i32>,
        replaced: u32,
    },
    /// A replacement failed outside a reload: `worker` keeps `kept`.
    ReplacementFailed {
        worker: WorkerId,
        kept: Option<i32>,
    },
    /// A replacement for `old` is being started.
    ReplacementStarting {
        worker: WorkerId,
        old: i32,
        why: Restart,
    },
    ReplacementStarted {
        worker: WorkerId,
        pid: i32,
        why: Restart,
    },
    /// The replacement is routed; `old` is told to stop.
    ReplacementReady {
        worker: WorkerId,
        pid: i32,
        #[serde(rename = "after_ms", serialize_with = "millis")]
        after: Duration,
        old: i32,
        why: Restart,
    },
    ReplacementNotReady {
        worker: WorkerId,
        pid: i32,
        #[serde(rename = "after_ms", serialize_with = "millis")]
        after: Duration,
    },
    ReplacementExited {
        worker: WorkerId,
        pid: i32,
        reason: ExitReason,
    },
    ReplacementSpawnFailed {
        worker: WorkerId,
        message: String,
    },
    /// The process being replaced died first: its replacement takes over.
    ExitedWhileReplaced {
        worker: WorkerId,
        pid: i32,
        reason: ExitReason,
        why: Restart,
    },
    /// Stop first, start after (a worker's own fixed port).
    StoppingToRestart {
        worker: WorkerId,
        pid: i32,
        why: Restart,
    },
    /// The process stopped on purpose is started again.
    RestartedInPlace {
        worker: WorkerId,
        pid: i32,
        reason: ExitReason,
        why: Restart,
    },
    /// A process stopped to be started again outlived the grace period.
    InPlaceKilled {
        worker: WorkerId,
        pid: i32,
        #[serde(rename = "grace_ms", serialize_with = "millis")]
        grace: Duration,
    },
    /// An old (replaced or scaled away) process ended.
    RetiredStopped {
        worker: WorkerId,
        pid: i32,
        reason: ExitReason,
    },
    /// An old process outlived the grace period: SIGKILL.
    RetiredKilled {
        worker: WorkerId,
        pid: i32,
        #[serde(rename = "grace_ms", serialize_with = "millis")]
        grace: Duration,
    },
    Scaling {
        from: u32,
        to: u32,
    },
    ScaledAway {
        worker: WorkerId,
        pid: i32,
    },
    /// `failures` liveness probes in a row failed: the worker is replaced.
    Unresponsive {
        worker: WorkerId,
        pid: i32,
        failures: u32,
    },
    /// Above the memory ceiling: the worker is replaced.
    AboveCeiling {
        worker: WorkerId,
        pid: i32,
        rss_bytes: u64,
        limit_bytes: u64,
    },
}

impl Notice {
    /// How serious it is.
    pub fn level(&self) -> Level {
        use Notice::*;
        match self {
            Exited { reason, .. } if reason.success() => Level::Info,
            AllStopped { code: 0 } => Level::Info,
            NotReady { .. }
            | Exited { .. }
            | Restarting { .. }
            | FailedWhileStopping { .. }
            | ReplacementFailed { .. }
            | ExitedWhileReplaced { .. }
            | InPlaceKilled { .. }
            | RetiredKilled { .. }
            | Unresponsive { .. }
            | AboveCeiling { .. } => Level::Warn,
            RespawnLimit { .. }
            | CannotRun { .. }
            | SpawnFailed { .. }
            | KilledAfterGrace { .. }
            | AllStopped { .. }
            | ReloadAborted { .. }
            | ReplacementNotReady { .. }
            | ReplacementExited { .. }
            | ReplacementSpawnFailed { .. } => Level::Error,
            Started { .. }
            | Ready { .. }
            | StopRequested { .. }
            | Stopped { .. }
            | ReloadStarted { .. }
            | Refreshing { .. }
            | ReloadQueued
            | ReloadSkipped { .. }
            | ReloadComplete { .. }
            | ReloadCancelled
            | ReplacementStarting { .. }
            | ReplacementStarted { .. }
            | ReplacementReady { .. }
            | StoppingToRestart { .. }
            | RestartedInPlace { .. }
            | RetiredStopped { .. }
            | Scaling { .. }
            | ScaledAway { .. } => Level::Info,
        }
    }
}

fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis().min(u128::from(u64::MAX)) as u64)
}

fn signal_name<S: Serializer>(sig: &Signal, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(sig.as_str())
}
