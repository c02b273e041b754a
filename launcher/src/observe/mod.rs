//! What the cluster looks like from outside: a [`snapshot`] the supervisor
//! fills in, rendered as the admin endpoint's [`health`] documents, the
//! Prometheus [`metrics`], and `corefit status`'s [`table`]; the CFS
//! [`throttle`] window and its warning. Pure: no I/O.

pub mod health;
pub mod metrics;
pub mod snapshot;
pub mod table;
pub mod throttle;

pub use snapshot::{ClusterSnapshot, ProxySnapshot, WorkerPhase, WorkerSnapshot};
