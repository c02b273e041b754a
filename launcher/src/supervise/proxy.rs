//! The `proxy` socket strategy: corefit accepts on the public port and
//! copies bytes between each client connection and one worker's private
//! loopback port. No per-request work: it never parses HTTP.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::balancer::Balancer;
use super::logs::Logger;

/// How long a client connection waits for a ready worker (at start, or
/// while every worker is restarting) before it is closed.
pub const WAIT_FOR_WORKER: Duration = Duration::from_secs(10);

/// The routing table and the open-connection count, shared with the
/// accept loop.
#[derive(Debug, Clone)]
pub struct Routes {
    table: Arc<Mutex<Balancer>>,
    open: Arc<AtomicUsize>,
    /// Woken whenever a worker is routed.
    routed: Arc<Notify>,
}

impl Routes {
    pub fn new(workers: usize) -> Routes {
        Routes {
            table: Arc::new(Mutex::new(Balancer::new(workers))),
            open: Arc::new(AtomicUsize::new(0)),
            routed: Arc::new(Notify::new()),
        }
    }

    pub fn route(&self, id: usize, addr: SocketAddr) {
        self.with(|b| b.route(id, addr));
        self.routed.notify_waiters();
    }

    /// Picks a worker, waiting up to [`WAIT_FOR_WORKER`] for one to be
    /// routed when none is.
    async fn pick_or_wait(&self, exclude: Option<usize>) -> Option<(usize, SocketAddr)> {
        let deadline = tokio::time::Instant::now() + WAIT_FOR_WORKER;
        loop {
            // Register before looking, so a route() in between is not missed.
            let notified = self.routed.notified();
            if let Some(pick) = self.with(|b| b.pick(exclude)) {
                return Some(pick);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    pub fn unroute(&self, id: usize) {
        self.with(|b| b.unroute(id));
    }

    /// Client connections still being copied.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Balancer) -> T) -> T {
        // A poisoned lock only means another task panicked mid-update; the
        // table is still usable.
        let mut guard = self.table.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

/// Accepts until aborted (dropping the listener stops accepting).
pub fn serve(listener: TcpListener, routes: Routes, logger: Logger) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (client, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: report, back off a little, go on.
                    logger.warn(&format!("proxy: accept failed: {e}"));
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let routes = routes.clone();
            routes.open.fetch_add(1, Ordering::AcqRel);
            tokio::spawn(async move {
                relay(client, peer, &routes, logger).await;
                routes.open.fetch_sub(1, Ordering::AcqRel);
            });
        }
    })
}

/// Connects the client to a worker (trying a second worker if the first
/// refuses) and copies both ways until both sides are done.
async fn relay(mut client: TcpStream, peer: SocketAddr, routes: &Routes, logger: Logger) {
    let _ = client.set_nodelay(true);
    let mut tried = None;
    for _ in 0..2 {
        let Some((id, addr)) = routes.pick_or_wait(tried).await else {
            logger.warn(&format!(
                "proxy: no worker ready within {}s for the connection from {peer}; closing it",
                WAIT_FOR_WORKER.as_secs()
            ));
            return;
        };
        match TcpStream::connect(addr).await {
            Ok(mut upstream) => {
                let _ = upstream.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                routes.with(|b| b.release(id, addr));
                return;
            }
            Err(e) => {
                routes.with(|b| b.release(id, addr));
                logger.warn(&format!("proxy: worker {id} at {addr} refused: {e}"));
                tried = Some(id);
            }
        }
    }
}
