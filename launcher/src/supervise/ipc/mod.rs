//! The relay between Node workers that plays the part of Node's cluster
//! primary for socket.io's cluster adapter (`@socket.io/cluster-adapter`,
//! `io.adapter(createAdapter())`): with `--affinity`, each worker gets the
//! IPC channel Node reads from `NODE_CHANNEL_FD` and a preloaded
//! `cluster.worker`; what one worker's adapter publishes reaches the
//! others, as `setupPrimary()` would send it.
//!
//! ```text
//!  worker A ──line──▶ hub (bounded lines) ──route::Router──▶ queue ──▶ worker B, C
//!  worker A's channel closes ──▶ WORKER_EXIT(A's ids) ──▶ B, C
//! ```
//!
//! - [`route`]: which workers a message goes to (pure).
//! - [`node`]: the preloaded module and `NODE_OPTIONS` (pure).
//! - [`hub`]: the reading and writing tasks, the counters (effects).

pub mod hub;
pub mod node;
pub mod route;

pub use hub::Hub;
