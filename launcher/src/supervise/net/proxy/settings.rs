//! The proxy's settings, typed: timeouts, the connection cap, the largest
//! head, how the client's address is forwarded, and client affinity.

use std::time::Duration;

use super::affinity::Affinity;
use super::forwarded::Forwarding;

/// Largest request or response head accepted (Node's default is 16 KiB,
/// nginx's 32 KiB: the app's own, smaller limit applies first).
pub const MAX_HEAD: usize = 64 * 1024;

/// `--max-connections`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxConnections {
    /// From the open-files limit (see [`super::limits::auto_max_connections`]).
    Auto,
    Limit(usize),
}

/// Everything the proxy is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySettings {
    /// A request head must be complete within this (`--header-timeout`).
    pub header_timeout: Duration,
    /// A keep-alive client connection with nothing in flight is closed
    /// after this (`--idle-timeout`).
    pub idle_timeout: Duration,
    pub max_connections: MaxConnections,
    pub max_head: usize,
    pub forwarding: Forwarding,
    /// Which worker a client's connections go to (`--affinity`).
    pub affinity: Affinity,
}

impl ProxySettings {
    /// Whether something only the proxy does was asked for (forwarded
    /// addresses, a connection cap, timeouts other than the defaults): then
    /// even one worker runs behind the proxy.
    pub fn asks_for_proxy(&self) -> bool {
        let d = ProxySettings::default();
        self.forwarding != d.forwarding
            || self.max_connections != d.max_connections
            || self.header_timeout != d.header_timeout
            || self.idle_timeout != d.idle_timeout
    }
}

impl Default for ProxySettings {
    fn default() -> ProxySettings {
        ProxySettings {
            header_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(75),
            max_connections: MaxConnections::Auto,
            max_head: MAX_HEAD,
            forwarding: Forwarding::default(),
            affinity: Affinity::None,
        }
    }
}
