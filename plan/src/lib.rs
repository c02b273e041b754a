//! # corefit-plan — the decision matrix
//!
//! One container, how many processes? This crate answers from plain data
//! and records every reason. It is the one decision both corefit binaries
//! use: the launcher (`corefit`) for the container it runs in, the
//! operator (`corefit-operator`) for the pods it is about to create.
//!
//! ## Theory of operation
//!
//! ```text
//!  launcher: probes read          operator: a ClusterApp's
//!  cgroups, /proc, env            spec.resources
//!  ┌───────────────────┐          ┌───────────────────────┐
//!  │ Limits + Platform │          │ PodResources+Platform │
//!  └─────────┬─────────┘          └───────────┬───────────┘
//!            │ plan()                         │ plan_for_pod()
//!            ▼                                ▼
//!   Capacity::observed               Capacity::of_pod
//!            └───────────────────┬────────────┘
//!                                ▼ CPUs and memory, each with its source
//!  flags + env ─resolve()─▶ the matrix ─▶ Plan: mode, workers, scaling,
//!              (Overrides)                      caps, worker env, reasons,
//!                                               warnings
//! ```
//!
//! 1. [`facts`]: the inputs as plain data. The launcher's probes fill
//!    [`Limits`] and [`Platform`] from the system; the operator fills
//!    [`PodResources`] from a spec. Neither path fakes the other's.
//! 2. The capacity (private): every known CPU and memory size is a
//!    candidate, the smallest usable one wins, its source is kept.
//! 3. [`overrides`]: what the user asked for, flag > `COREFIT_*` > the
//!    names people already use; a bad value is an [`OverrideError`]
//!    naming the flag or variable. The environment arrives as an [`Env`]
//!    map: reading it is the caller's job.
//! 4. [`decide`]: the matrix, [`plan`] and [`plan_for_pod`] -> [`Plan`].
//! 5. [`worker_env`]: the environment each worker gets from the decision;
//!    [`shares`]: the table of what each runtime is told of its share.
//! 6. [`size`]: memory sizes as users write them; [`redact`]:
//!    secret-looking variables' values, never printed; [`request`]: a
//!    Kubernetes CPU request read back from `cpu.shares` / `cpu.weight`.
//!
//! Guarantees: no I/O (no files, environment, clock or network; the only
//! dependencies are `serde` and `thiserror`); never 0 workers; never above
//! a cap unless oversubscription is allowed; more CPUs never mean fewer
//! workers (property tests in `launcher/tests/plan_properties.rs`, table
//! tests in `launcher/tests/plan_table.rs`).

mod capacity;
pub mod decide;
pub mod facts;
pub mod overrides;
pub mod redact;
pub mod request;
pub mod shares;
pub mod size;
pub mod worker_env;

pub use decide::{plan, plan_for_pod, Binding, Cap, Caps, Mode, Plan, Scaling};
pub use facts::{Limits, Platform, PlatformKind, PodResources};
pub use overrides::{resolve, Env, FlagValues, OverrideError, Overrides};
