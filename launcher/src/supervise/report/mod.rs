//! Reporting: what corefit says and shows about the cluster.
//!
//! - [`logs`]: corefit's own log lines (text or JSON) and the workers' output.
//! - [`notice`]: the machine's typed notices as sentences and JSON fields.
//! - [`cluster`]: the snapshot behind status, /health and /metrics.
//! - [`sampler`]: each worker tree's RSS and CPU on an interval; thresholds and ceilings.

pub mod cluster;
pub mod logs;
pub mod notice;
pub mod sampler;
