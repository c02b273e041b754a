//! Test support shared by every test binary of corefit and corefit-operator.
//!
//! One home for what the tests used to copy between files:
//!
//! - [`apps`]: the test apps under `tests/apps/` and what their set-up
//!   scripts installed.
//! - [`args`]: a chained builder for `corefit` command lines.
//! - [`corefit`] (feature `launcher`): the [`corefit::Corefit`] guard
//!   that runs the real binary and, when dropped, kills by pid the corefit
//!   it started and every process seen under it; [`corefit::Cluster`], a
//!   corefit on free ports with its admin endpoint and control socket; the
//!   control subcommands.
//! - [`cgroup`] (feature `launcher`): cgroup v1 directories made below
//!   the test's own, and a wrapper that runs a command inside one.
//! - [`process`] (feature `launcher`): `/proc` (parents, zombies, run
//!   marks, orphans), signals to pids the test picked.
//! - [`http`]: plain HTTP/1.1 to 127.0.0.1, free ports, the admin
//!   endpoint, Prometheus samples.
//! - [`load`]: the one load generator (keep-alive clients and
//!   fresh-connection probers) and what it saw.
//! - [`wait`]: polling a condition with a deadline.
//! - [`record`]: the reliability recorder (one JSON line per scenario for
//!   docs/reliability.md).
//! - [`facts`]: cgroup fixture trees and hand-built `Limits` for the plan.
//! - [`k8s`] (feature `operator`): the test control plane's client, CRD,
//!   namespaces, the real operator binary, ClusterApp builders, the
//!   stand-in kubelet and stopping control-plane components.
//!
//! Nothing here needs root or a control plane by itself; the tests that
//! use [`corefit`] or [`k8s`] do.

use std::path::PathBuf;

pub mod apps;
pub mod args;
pub mod facts;
pub mod http;
pub mod load;
pub mod record;
pub mod reload;
pub mod wait;

#[cfg(feature = "launcher")]
pub mod cgroup;
#[cfg(feature = "launcher")]
pub mod corefit;
#[cfg(feature = "launcher")]
pub mod netns;
#[cfg(feature = "launcher")]
pub mod process;

#[cfg(feature = "operator")]
pub mod k8s;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A binary of this workspace built for the running test: cargo builds a
/// package's binaries before its integration tests, next to `deps/` where
/// the test binary itself lies.
pub fn target_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a test binary lies in target/<profile>/deps");
    let bin = dir.join(name);
    assert!(bin.is_file(), "{} is not built", bin.display());
    bin
}

pub use apps::app;

/// What the launcher's real-process tests use, in one import.
#[cfg(feature = "launcher")]
pub mod prelude {
    pub use crate::apps::{app, setup_script};
    pub use crate::args::Args;
    pub use crate::cgroup::CgroupDir;
    pub use crate::corefit::*;
    pub use crate::http::*;
    pub use crate::load::*;
    pub use crate::process::*;
    pub use crate::record::record;
    pub use crate::wait::wait_for;
}
