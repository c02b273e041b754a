//! Supervision: running the plan's workers the way tini, gunicorn and PM2's
//! cluster mode do.
//!
//! - [`config`]: the typed settings of a run and their parsers.
//! - [`machine`]: the rules, as a pure state machine (`handle(now, Event) -> Vec<Action>`);
//!   its replacement rules (reload, scaling, memory, liveness) in `machine_replace.rs`.
//! - [`backoff`]: restart delays.
//! - [`runtime`]: the one loop that feeds events and performs actions.
//! - [`spawn`]: starting a worker in its own process group.
//! - [`handoff`]: `shared` mode's fd-3 handoff inside the worker (`__exec-worker`).
//! - [`reaper`]: `waitpid(-1, WNOHANG)` until empty; child subreaper.
//! - [`oom`]: corefit's `oom_score_adj` 500 below its workers', so the OOM
//!   killer takes a worker (restarted), not the supervisor.
//! - [`signals`]: the signals handled and forwarded.
//! - [`sockets`]: the public listener, the shared socket, private ports.
//! - [`proxy`]: the `proxy` strategy, an HTTP/1.1 intermediary on a real
//!   parser (framing, resends, limits, forwarded addresses; least connections).
//! - [`readiness`]: port probes and `NOTIFY_SOCKET`.
//! - [`sampler`]: each worker tree's RSS and CPU on an interval; thresholds and ceilings.
//! - [`cluster`]: the snapshot for status, /health and /metrics; the scaling cap.
//! - [`logs`]: corefit's own log lines and the workers' output.
//! - [`exit`]: exit reasons and codes (tini's), and the 127/126 pre-check.

pub mod backoff;
pub mod cluster;
pub mod config;
pub mod exit;
pub mod handoff;
pub mod logs;
pub mod machine;
pub mod oom;
pub mod proxy;
pub mod readiness;
pub mod reaper;
pub mod runtime;
pub mod sampler;
pub mod signals;
pub mod sockets;
pub mod spawn;

pub use config::{LogFormat, ReadyCheck, RestartPolicy, RunConfig, SocketStrategy};
pub use runtime::{run, run_with, Resize};
