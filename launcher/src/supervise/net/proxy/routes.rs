//! The routing table shared by the runtime (which routes and unroutes
//! workers) and the proxy's connections (which pick one), with the counts
//! the admin endpoint shows.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::affinity::{self, Affinity, CookieKey, Want};
use super::balancer::Balancer;
use super::settings::ProxySettings;

/// How long a client connection waits for a ready worker (at start, or
/// while every worker is restarting) before it is answered 503.
pub const WAIT_FOR_WORKER: Duration = Duration::from_secs(10);

/// The routing table and the connection counts, shared with the accept
/// loop and every connection.
#[derive(Debug, Clone)]
pub struct Routes {
    table: Arc<Mutex<Balancer>>,
    open: Arc<AtomicUsize>,
    refused: Arc<AtomicU64>,
    /// Woken whenever a worker is routed.
    routed: Arc<Notify>,
    /// `--affinity cookie`: this run's secret for the cookie's tokens.
    cookies: CookieKey,
}

impl Routes {
    pub fn new(workers: usize) -> Routes {
        Routes {
            table: Arc::new(Mutex::new(Balancer::new(workers))),
            open: Arc::new(AtomicUsize::new(0)),
            refused: Arc::new(AtomicU64::new(0)),
            routed: Arc::new(Notify::new()),
            cookies: CookieKey::new(random_secret()),
        }
    }

    /// The cookie tokens' secret.
    pub fn cookies(&self) -> CookieKey {
        self.cookies
    }

    /// What a connection whose request head is `head`, from `peer`, asks
    /// of the balancer under `settings.affinity`.
    pub fn want(&self, settings: &ProxySettings, head: &[u8], peer: IpAddr) -> Want {
        if settings.affinity == Affinity::None {
            return Want::Any;
        }
        let slots = self.with(|b| b.slots());
        let trusted = &settings.forwarding.trusted;
        affinity::want(settings.affinity, head, peer, trusted, self.cookies, slots)
    }

    pub fn route(&self, id: usize, addr: SocketAddr) {
        self.with(|b| b.route(id, addr));
        self.routed.notify_waiters();
    }

    pub fn unroute(&self, id: usize) {
        self.with(|b| b.unroute(id));
    }

    /// Picks a worker other than `exclude` for a connection that wants
    /// `want`, waiting up to [`WAIT_FOR_WORKER`] for one to be routed
    /// when none is.
    pub async fn pick_or_wait(
        &self,
        exclude: Option<SocketAddr>,
        want: Want,
    ) -> Option<(usize, SocketAddr)> {
        let deadline = tokio::time::Instant::now() + WAIT_FOR_WORKER;
        loop {
            // Register before looking, so a route() in between is not missed.
            let notified = self.routed.notified();
            if let Some(pick) = self.with(|b| b.pick(exclude, want)) {
                return Some(pick);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Client connections open now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Client connections refused because `--max-connections` were open.
    pub fn refused_connections(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub(super) fn opened(&self) -> usize {
        self.open.fetch_add(1, Ordering::AcqRel) + 1
    }

    pub(super) fn closed(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }

    pub(super) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Balancer) -> T) -> T {
        // A poisoned lock only means another task panicked mid-update; the
        // table is still usable.
        let mut guard = self.table.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

/// 64 random bits: std's hasher keys are drawn from the system's random
/// source once per process.
fn random_secret() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::process::id())
}
