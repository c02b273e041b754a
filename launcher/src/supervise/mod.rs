//! Supervision: running the plan's workers the way tini, gunicorn and PM2's
//! cluster mode do. Decisions are pure; effects live in their own homes.
//!
//! - [`machine`]: the rules, as a pure state machine (`handle(now, Event) -> Vec<Action>`).
//! - [`runtime`]: the one loop that feeds events and performs actions.
//! - [`process`]: process effects: spawn, reaping, signals, OOM scores, fd-3 handoff.
//! - [`net`]: sockets, readiness probes and the `proxy` strategy.
//! - [`report`]: corefit's log, the cluster snapshot, the memory sampler.
//! - [`config`]: the typed settings of a run and their parsers.

pub mod config;
pub mod launch;
pub mod machine;
pub mod net;
pub mod process;
pub mod report;
pub mod runtime;
pub mod settings;

pub use config::{LogFormat, ReadyCheck, RestartPolicy, RunConfig, SocketStrategy};
pub use runtime::{run, run_with, Resize};
// Paths the cli, the proxy and the fuzz targets use.
pub use net::{proxy, readiness, sockets};
pub use process::{handoff, oom};
pub use report::logs;
