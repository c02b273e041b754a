//! The edge: one reconcile of one `ClusterApp`. Everything it decides comes
//! from the pure [`crate::desired`] and [`crate::status`]; this module only
//! reads the caches, writes when something differs, and records events.
//!
//! - `app`: [`reconcile`] (read the caches, compute, write, report) and
//!   [`error_policy`].
//! - `write`: each write and its "already there?" check.
//! - `context`: what every reconcile shares ([`Context`]: client, caches,
//!   backoff, the statuses written, the discovered API versions).
//! - `error`: [`Error`] and its metric label.
//!
//! Writes, all under the field manager [`MANAGER`](crate::desired::MANAGER):
//! - the Deployment and the Service by server-side apply, only when the
//!   cached object does not already hold every field we would apply;
//! - the status by server-side apply on the status subresource, only when
//!   the computed status differs from the stored one;
//! - an event when the decision changes or the app turns Degraded (or its
//!   Degraded message changes).
//!
//! Failures go through [`error_policy`]: counted by reason, requeued with a
//! per-object [`Backoff`](crate::backoff::Backoff) that a success resets.

mod app;
mod context;
mod error;
mod write;

pub use app::{error_policy, reconcile};
pub use context::Context;
pub use error::Error;
