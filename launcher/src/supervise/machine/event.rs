//! The machine's vocabulary: its parameters ([`Policy`]), what happened
//! ([`Event`]) and what the runtime must do about it ([`Action`]).

use std::time::Duration;

use nix::sys::signal::Signal;

use super::backoff::Backoff;
use super::notice::Notice;
use super::WorkerId;
use crate::exit::ExitReason;

/// The rules' parameters.
#[derive(Debug, Clone)]
pub struct Policy {
    pub workers: u32,
    /// Restart workers that exit (otherwise the first exit ends the run).
    pub restart: bool,
    /// Crashes in a row tolerated per worker (see [`super::backoff`]).
    pub respawn_limit: u32,
    /// A worker up at least this long after its readiness was stable
    /// (restarted at once the first time); 10 times this, its earlier
    /// crashes are forgiven.
    pub min_uptime: Duration,
    pub backoff: Backoff,
    /// Time between forwarding SIGTERM and SIGKILL (also for retired
    /// workers).
    pub grace: Duration,
    /// How long a worker may take to become ready; `None` when no
    /// readiness check applies (ready as soon as started).
    pub ready_timeout: Option<Duration>,
    /// Workers replaced at once during a reload (at least 1).
    pub reload_parallelism: u32,
    /// Stop the old process before starting its replacement (workers that
    /// bind a fixed port of their own).
    pub replace_in_place: bool,
    /// Failed liveness probes in a row that get a worker replaced (0: off).
    pub probe_failures: u32,
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The run begins.
    Start,
    /// `Action::Spawn` succeeded.
    Spawned { id: WorkerId, pid: i32 },
    /// `Action::Spawn` failed; `code` is what corefit should exit with.
    SpawnFailed {
        id: WorkerId,
        message: String,
        code: u8,
    },
    /// A child (worker or adopted orphan) was reaped.
    Exited { pid: i32, reason: ExitReason },
    /// A readiness check passed.
    Ready { id: WorkerId, pid: i32 },
    /// corefit received a signal.
    Signal(Signal),
    /// A rolling reload was asked for (SIGHUP is the same).
    Reload,
    /// Run this many workers from now on (already admitted, see
    /// [`super::admission`]).
    Scale { workers: u32 },
    /// A live resize put a new plan in force (already admitted, see
    /// [`super::admission`]): run `workers`, and replace, as in a rolling
    /// reload, every ready worker started before environment generation
    /// `env` (the runtime's count of plans that changed the workers'
    /// environment).
    Resize { workers: u32, env: u64 },
    /// Worker `id` (`pid`) uses more memory than its ceiling.
    MemoryExceeded {
        id: WorkerId,
        pid: i32,
        rss_bytes: u64,
        limit_bytes: u64,
    },
    /// A liveness probe of worker `id` (`pid`) passed or failed.
    Probe { id: WorkerId, pid: i32, ok: bool },
    /// Time passed (a deadline from `Supervisor::next_deadline` is due).
    Tick,
}

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// Something the runtime must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start worker `id` (a first start, a restart or a replacement) and
    /// report `Spawned` or `SpawnFailed`.
    Spawn { id: WorkerId },
    /// Send `signal` to the process group led by `pid`.
    SignalGroup { pid: i32, signal: Signal },
    /// Send new connections to worker `id`'s newest process.
    Route { id: WorkerId },
    /// Stop sending new connections to worker `id`.
    Unroute { id: WorkerId },
    /// Close the public listening socket (proxy, shared).
    StopAccepting,
    /// Tell the operator (rendered by the runtime's logger).
    Notice(Notice),
    /// The run is over: exit with this code (after draining connections).
    Exit(u8),
}
