//! Control of a running corefit: the Unix-socket [`protocol`], the pure
//! [`scale`] rules, and the [`client`] behind `corefit status | reload |
//! scale | stop`. The server side lives in the supervisor's loop.

pub mod client;
pub mod protocol;
pub mod scale;
pub mod server;

pub use protocol::{parse_request, Request, Response};
pub use scale::{ScaleCap, ScaleTarget};
