//! Networking: the sockets corefit opens, how it learns a worker is ready
//! or still alive, and the `proxy` strategy.
//!
//! - [`sockets`]: the public listener, the shared socket(s), private ports.
//! - [`readiness`]: port probes, `NOTIFY_SOCKET` and Node's IPC `'ready'`.
//! - [`handover`]: `inject`'s relay of connections a stopping worker
//!   closes with a request unread.
//! - [`liveness`]: the HTTP probe of a ready worker's own port.
//! - [`proxy`]: an HTTP/1.1 intermediary on a real parser (framing,
//!   resends, limits, forwarded addresses; least connections).

pub mod handover;
pub mod liveness;
pub mod proxy;
pub mod readiness;
pub mod sockets;
