//! What the cluster looks like from outside: a [`snapshot`] the supervisor
//! fills in, rendered as the admin endpoint's [`health`] documents, the
//! Prometheus [`metrics`], and `corefit status`'s [`table`]. Pure: no I/O.

pub mod health;
pub mod metrics;
pub mod snapshot;
pub mod table;

pub use snapshot::{ClusterSnapshot, ProxySnapshot, WorkerPhase, WorkerSnapshot};
