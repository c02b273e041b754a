//! The `proxy` socket strategy: corefit accepts on the public port and
//! copies bytes between each client connection and one worker's private
//! loopback port. No per-request work: it never parses HTTP.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::balancer::Balancer;
use super::logs::Logger;
use super::retry::{retryable, MAX_RETRY_BYTES};

/// How long a client connection waits for a ready worker (at start, or
/// while every worker is restarting) before it is closed.
pub const WAIT_FOR_WORKER: Duration = Duration::from_secs(10);

/// How long the proxy waits for a client's next request after a worker
/// that is being stopped closed the connection between two requests.
pub const LINGER: Duration = Duration::from_millis(25);

/// A request a stopping worker had for longer than this before it closed
/// the connection is not sent again: the worker was working on it.
pub const RETRY_WINDOW: Duration = Duration::from_millis(100);

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
/// refuses) and copies both ways until both sides are done. When a worker
/// corefit is stopping closes the connection with an idempotent request
/// unanswered, the request goes to another worker (see [`super::retry`]).
async fn relay(mut client: TcpStream, peer: SocketAddr, routes: &Routes, logger: Logger) {
    let _ = client.set_nodelay(true);
    // The client's bytes since the last byte a worker sent back.
    let mut unanswered: Vec<u8> = Vec::new();
    let mut client_done = false;
    let mut retries = 0;
    loop {
        let Some((id, addr, upstream)) = connect(routes, peer, logger).await else {
            return;
        };
        let (end, unanswered_since) =
            pump(&mut client, upstream, &mut unanswered, &mut client_done).await;
        let still_routed = routes.with(|b| {
            b.release(id, addr);
            b.is_routed(id, addr)
        });
        let stopping_worker_closed = end == End::UpstreamClosed && !client_done && !still_routed;
        if stopping_worker_closed && unanswered.is_empty() {
            // The worker closed between requests. The client may have
            // sent its next request already, unaware: take what arrives
            // before telling it (bounded), and send it on.
            let mut buf = vec![0u8; 16 * 1024];
            match tokio::time::timeout(LINGER, client.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => unanswered.extend_from_slice(&buf[..n]),
                Ok(_) => client_done = true,
                Err(_) => {}
            }
        }
        // A worker that closed long after the request reached it was
        // working on it (e.g. killed after the grace period): not retried.
        let fresh = unanswered_since.is_none_or(|t| t.elapsed() < RETRY_WINDOW);
        let retry = stopping_worker_closed
            && fresh
            && !client_done
            && retries < 3
            && retryable(&unanswered);
        if !retry {
            let _ = client.shutdown().await;
            return;
        }
        retries += 1;
        logger.info(&format!(
            "proxy: worker {id} closed a connection from {peer} while stopping, with a request unanswered; sending it to another worker"
        ));
    }
}

/// Why copying stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The worker closed its side (or failed).
    UpstreamClosed,
    /// The client is gone.
    ClientGone,
}

/// Picks a worker and connects, trying a second one if the first refuses.
async fn connect(
    routes: &Routes,
    peer: SocketAddr,
    logger: Logger,
) -> Option<(usize, SocketAddr, TcpStream)> {
    let mut tried = None;
    for _ in 0..2 {
        let Some((id, addr)) = routes.pick_or_wait(tried).await else {
            logger.warn(&format!(
                "proxy: no worker ready within {}s for the connection from {peer}; closing it",
                WAIT_FOR_WORKER.as_secs()
            ));
            return None;
        };
        match TcpStream::connect(addr).await {
            Ok(upstream) => {
                let _ = upstream.set_nodelay(true);
                return Some((id, addr, upstream));
            }
            Err(e) => {
                routes.with(|b| b.release(id, addr));
                logger.warn(&format!("proxy: worker {id} at {addr} refused: {e}"));
                tried = Some(id);
            }
        }
    }
    None
}

/// Copies both ways until the worker closes (or both sides are done),
/// first sending `unanswered` again when it holds a request to retry.
/// Also returns when the oldest unanswered byte was sent to this worker.
async fn pump(
    client: &mut TcpStream,
    mut upstream: TcpStream,
    unanswered: &mut Vec<u8>,
    client_done: &mut bool,
) -> (End, Option<Instant>) {
    let (mut ur, mut uw) = upstream.split();
    let mut since = (!unanswered.is_empty()).then(Instant::now);
    if !unanswered.is_empty() && uw.write_all(unanswered).await.is_err() {
        return (End::UpstreamClosed, since);
    }
    let (mut cr, mut cw) = client.split();
    let mut from_client = vec![0u8; 16 * 1024];
    let mut from_upstream = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            r = cr.read(&mut from_client), if !*client_done => match r {
                Ok(0) | Err(_) => {
                    *client_done = true;
                    let _ = uw.shutdown().await;
                }
                Ok(n) => {
                    let chunk = &from_client[..n];
                    since.get_or_insert_with(Instant::now);
                    // A leading 0 marks "too long to retry" until the
                    // next response byte.
                    if unanswered.first() != Some(&0) {
                        if unanswered.len() + n <= MAX_RETRY_BYTES {
                            unanswered.extend_from_slice(chunk);
                        } else {
                            unanswered.clear();
                            unanswered.push(0);
                        }
                    }
                    if uw.write_all(chunk).await.is_err() {
                        return (End::UpstreamClosed, since);
                    }
                }
            },
            r = ur.read(&mut from_upstream) => match r {
                Ok(0) | Err(_) => return (End::UpstreamClosed, since),
                Ok(n) => {
                    unanswered.clear();
                    since = None;
                    if cw.write_all(&from_upstream[..n]).await.is_err() {
                        return (End::ClientGone, since);
                    }
                }
            },
        }
    }
}
