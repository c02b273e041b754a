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
//! 5. [`supervise`] runs the plan (`corefit [flags] -- CMD ARGS...`): a
//!    pure state machine (`supervise::machine`) decides, one event loop
//!    (`supervise::runtime`) acts. Each worker runs in its own process
//!    group with the plan's environment and a `PORT` chosen by the socket
//!    strategy (`proxy`: corefit balances connections over private loopback
//!    ports; `shared`: corefit binds and hands the listening socket over as
//!    fd 3 with `LISTEN_PID` set to the worker's own pid, one SO_REUSEPORT
//!    socket per worker by default or one for all; `reuseport`; `none`).
//!    corefit reaps every child (`waitpid(-1)` until empty, as tini;
//!    subreaper when not PID 1), forwards signals to the groups, restarts
//!    crashed workers with exponential backoff up to a respawn limit, and
//!    on SIGTERM/SIGINT stops accepting, forwards, waits the grace period,
//!    then SIGKILLs. Exit codes are tini's (own code, 128+N, 127, 126).
//! 6. Operating a running cluster: SIGHUP / `corefit reload` replaces the
//!    workers one at a time (the machine holds two processes for one
//!    worker id meanwhile: the old one is *retired* once its replacement
//!    is ready and routed; a replacement never ready aborts the reload);
//!    SIGTTIN / SIGTTOU / `corefit scale` change the count within the
//!    plan's caps ([`control::scale`]); the [`control`] socket answers
//!    `status | reload | scale | stop`; the runtime publishes a
//!    [`observe::ClusterSnapshot`] on a watch channel after every batch of
//!    events for the read-only [`admin`] endpoint; each worker's process
//!    tree is sampled on an interval (`supervise::sampler`) for status,
//!    metrics, warnings and a memory ceiling that replaces the worker.
//!
//! ```text
//!  signals, SIGCHLD (reap), readiness, timers
//!        │ Event                      Action │ spawn, killpg, route,
//!        ▼                                   │ stop accepting, log, exit
//!  ┌──────────────────┐  handle(now, ev) ┌───┴──────────────┐
//!  │ runtime (tokio,  │ ───────────────▶ │ machine::        │
//!  │ current thread)  │ ◀─────────────── │ Supervisor (pure)│
//!  └──────────────────┘   Vec<Action>    └──────────────────┘
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
