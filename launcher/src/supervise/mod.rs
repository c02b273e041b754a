//! Supervision: running the plan's workers the way tini, gunicorn and PM2's
//! cluster mode do. Every decision is a plain function over plain data;
//! the runtime performs effects, one step at a time.
//!
//! ```text
//!  pure                                      effects
//!  settings::Settings::resolve ──┐           runtime/   setup (one step a call), the
//!  launch::launch_plan ──────────┼─────────▶            select loop, spawn, control
//!  machine::Supervisor::handle ──┘ (Event ▶ Vec<Action>)        │
//!                                            process/   spawn, reaper, signals, oom, handoff
//!                                            net/       sockets, readiness, liveness, proxy/
//!                                            report/    logs, notices, cluster snapshot, sampler
//! ```
//!
//! - [`machine`]: the rules (events, the worker lifecycle, exits, stop,
//!   replace, scale, admission of requests), emitting typed notices.
//! - [`settings`]: what a run decides from its config and the plan.
//! - [`launch`]: what starting one worker means (environment, port, fds, argv).
//! - [`resize`]: when a live resize puts a new plan in force, and what changed.
//! - [`runtime`]: the one loop that feeds events and performs actions.
//! - [`ipc`]: the relay of socket.io's cluster adapter between Node workers.
//! - [`process`], [`net`], [`report`]: the effects, by kind.
//! - [`config`]: the typed settings of a run and their parsers.
//!
//! Exit codes are [`crate::exit`]'s one table.

pub mod config;
pub mod ipc;
pub mod launch;
pub mod machine;
pub mod net;
pub mod process;
pub mod report;
pub mod resize;
pub mod runtime;
pub mod settings;

pub use config::{LogFormat, ReadyCheck, RestartPolicy, RunConfig, SocketStrategy};
pub use runtime::{run, run_with, Resize};
// Paths the cli, the proxy and the fuzz targets use.
pub use net::{proxy, readiness, sockets};
pub use process::{handoff, oom};
pub use report::logs;
