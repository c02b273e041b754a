//! # corefit — the launcher
//!
//! corefit is a container ENTRYPOINT that decides how many processes an app
//! should run from the CPU and memory the container was really given, and
//! explains why.
//!
//! ## Theory of operation
//!
//! ```text
//!   /proc, /sys, env          pure                       edges
//!  ┌──────────────┐   facts  ┌──────────────┐  Plan   ┌──────────────┐
//!  │ probe::*     │ ───────▶ │ plan::plan() │ ──────▶ │ explain /    │
//!  │ (reads only) │          │ (no I/O)     │         │ supervise    │
//!  └──────────────┘          └──────────────┘         └──────────────┘
//! ```
//!
//! 1. [`probe`] reads cgroup v1/v2 files along the process's own cgroup
//!    path and its ancestors, the affinity mask, the host's CPUs and
//!    memory, and the platform's signals. Every probe takes a root path, so
//!    tests point it at fixture trees. A file that cannot be read or parsed
//!    becomes a warning naming the file, and that file is ignored.
//! 2. [`plan::resolve`] turns flags and environment into typed overrides
//!    (flag > `COREFIT_*` > legacy names); bad values are errors naming the
//!    flag or variable.
//! 3. [`plan::plan`] applies the decision matrix and records every reason.
//!    [`plan`] is the `corefit-plan` crate (pure, serde and thiserror
//!    only), re-exported here; the operator uses the same crate.
//! 4. [`explain`] renders the inputs, the decision and the reasons as text
//!    or as one JSON document (see `docs/plan-json.md`).
//! 5. [`supervise`] runs the plan (`corefit [flags] -- CMD ARGS...`).
//!    Decisions are pure: `supervise::settings` resolves the strategy,
//!    readiness, restart policy and the machine's policy from the config
//!    and the plan; `supervise::launch` decides each worker's
//!    environment, port, descriptors and argv; `supervise::machine` is
//!    the state machine (`handle(now, Event) -> Vec<Action>`), one
//!    `Slot` per worker id, emitting typed notices. `supervise::runtime`
//!    performs the effects through `supervise::process` (spawn in its
//!    own process group, reaping with `waitpid(-1)` until empty as tini,
//!    subreaper when not PID 1, signals, OOM scores, the fd-3 handoff),
//!    `supervise::net` (sockets, readiness and liveness probes, the
//!    proxy) and `supervise::report` (log lines rendered from notices as
//!    text or JSON with their fields, the cluster snapshot, the sampler).
//!    Socket strategies: `proxy` (corefit balances connections over
//!    private loopback ports), `shared` (corefit binds and hands the
//!    socket over as fd 3 with `LISTEN_PID` set to the worker's own pid,
//!    one SO_REUSEPORT socket per worker by default or one for all),
//!    `inject`, `reuseport`, `none`. Crashed workers restart with
//!    exponential backoff up to a respawn limit; SIGTERM/SIGINT stop
//!    accepting, forward, wait the grace period, then SIGKILL. Every exit
//!    code is in [`exit`]'s one table (tini's: own code, 128+N, 127, 126).
//! 6. Operating a running cluster: SIGHUP / `corefit reload` replaces the
//!    workers one at a time (the worker's slot is `Replacing { old, new }`
//!    meanwhile; the old process leaves once its replacement is ready and
//!    routed; a replacement never ready aborts the reload); SIGTTIN /
//!    SIGTTOU / `corefit scale` change the count within the plan's caps
//!    (admitted by `supervise::machine::admission`, resolved by
//!    [`control::scale`]); the [`control`] socket answers `status |
//!    reload | scale | stop`; the runtime publishes a
//!    [`observe::ClusterSnapshot`] on a watch channel after every batch of
//!    events for the read-only [`admin`] endpoint; each worker's process
//!    tree is sampled on an interval (`supervise::report::sampler`) for
//!    status, metrics, warnings and a memory ceiling that replaces the
//!    worker.
//!
//! ```text
//!  signals, SIGCHLD (reap), readiness, timers, control
//!        │ Event                      Action │ spawn, killpg, route,
//!        ▼                                   │ stop accepting, notice, exit
//!  ┌──────────────────┐  handle(now, ev) ┌───┴──────────────┐
//!  │ runtime (tokio,  │ ───────────────▶ │ machine::        │
//!  │ current thread)  │ ◀─────────────── │ Supervisor (pure)│
//!  └──────────────────┘   Vec<Action>    └──────────────────┘
//!    executes settings::Settings and launch::LaunchPlan (pure)
//! ```
//!
//! Guarantees: the plan never yields 0 workers, never exceeds its caps
//! unless told to, and never yields fewer workers when CPUs grow (property
//! tests in `tests/plan_properties.rs`).

pub mod admin;
pub mod cli;
pub mod control;
pub mod decision;
pub mod exit;
pub mod explain;
pub mod inject;
pub mod observe;
/// The decision matrix: the `corefit-plan` crate, re-exported so
/// `corefit::plan::...` paths keep working.
pub use corefit_plan as plan;
pub mod probe;
pub mod strategies;
pub mod supervise;
