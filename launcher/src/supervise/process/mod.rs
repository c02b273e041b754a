//! Process effects: everything corefit does to or for a process.
//!
//! - [`command`]: the 127/126 pre-check before anything starts.
//! - [`spawn`]: starting a worker in its own process group.
//! - [`reaper`]: `waitpid(-1, WNOHANG)` until empty; child subreaper.
//! - [`signals`]: the signals handled and forwarded.
//! - [`oom`]: corefit's `oom_score_adj` 500 below its workers'.
//! - [`handoff`]: `shared` mode's fd-3 handoff inside the worker (`__exec-worker`).

pub mod command;
pub mod handoff;
pub mod oom;
pub mod reaper;
pub mod signals;
pub mod spawn;
