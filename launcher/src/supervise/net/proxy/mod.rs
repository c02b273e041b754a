//! The `proxy` socket strategy: corefit owns the public port and relays
//! each client connection to one worker's private loopback port, as an
//! HTTP/1.1 intermediary that frames every message with a real parser
//! (`httparse`) and never invents, reorders or splices bytes.
//!
//! ```text
//!  accept ──▶ cap? ──503──▶ close            (serve: --max-connections)
//!    │
//!    ▼ relay (one task per client)
//!  read a whole request head (--header-timeout, 64 KiB) ──▶ pick a worker
//!    │                                                     (least connections)
//!    ▼ pump: client→worker and worker→client at once, each framed
//!  worker side ends ──▶ exchange::after_upstream: reconnect | resend | close
//! ```
//!
//! - [`head`], [`body`], [`framer`]: where each request and response
//!   begins and ends (pure). Ambiguous framing is refused, never guessed.
//! - [`exchange`]: the unanswered requests and the resend rule (pure).
//! - [`forwarded`]: `X-Forwarded-*` / `Forwarded` and PROXY protocol (pure).
//! - [`relay`]: one connection's loop (effects); [`wire`]: its reads, writes
//!   and connects.
//! - [`routes`], [`balancer`]: which worker gets a connection;
//!   [`affinity`] (pure): what a connection's first request asks for
//!   (`--affinity client-ip|cookie`), [`hashing`] (pure): where a client
//!   goes (rendezvous hashing with a load bound, remembered).
//! - [`limits`]: the open-files limit and the connection cap.
//! - [`settings`]: the typed settings.

pub mod affinity;
pub mod balancer;
pub mod body;
pub mod exchange;
pub mod forwarded;
pub mod framer;
pub mod hashing;
pub mod head;
pub mod limits;
pub mod relay;
pub mod routes;
pub mod settings;
pub mod wire;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub use affinity::Affinity;
pub use forwarded::{ForwardedHeaders, Forwarding, ProxyProtocol};
pub use routes::Routes;
pub use settings::{MaxConnections, ProxySettings};

use crate::supervise::logs::Logger;
use limits::Episode;

/// The answer to a connection over the cap.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n";

/// Accepts until aborted (dropping the listener stops accepting).
/// `max_connections` is the resolved cap.
pub fn serve(
    listener: TcpListener,
    routes: Routes,
    settings: ProxySettings,
    max_connections: usize,
    logger: Logger,
) -> JoinHandle<()> {
    let ctx = Arc::new(relay::Ctx {
        routes,
        settings,
        logger,
    });
    tokio::spawn(trim_after_bursts(ctx.routes.clone()));
    tokio::spawn(async move {
        let mut refusing = Episode::default();
        let mut starving = false;
        loop {
            let (client, peer) = match listener.accept().await {
                Ok(c) => {
                    starving = false;
                    c
                }
                Err(e) => {
                    // EMFILE and friends: say so once, back off, go on.
                    if is_out_of_descriptors(&e) && !std::mem::replace(&mut starving, true) {
                        logger.warn(&format!(
                            "proxy: cannot accept connections: {e} ({} open); lower --max-connections or raise the open files limit",
                            ctx.routes.open_connections()
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let open = ctx.routes.open_connections();
            refusing.open(open, max_connections);
            if open >= max_connections {
                ctx.routes.refused();
                if refusing.refused() {
                    logger.warn(&format!(
                        "proxy: {open} connections open, the most allowed (--max-connections {max_connections}); answering new ones 503 until fewer are open"
                    ));
                }
                tokio::spawn(refuse(client));
                continue;
            }
            ctx.routes.opened();
            let ctx = ctx.clone();
            tokio::spawn(async move {
                relay::relay(client, peer, &ctx).await;
                ctx.routes.closed();
            });
        }
    })
}

/// Gives the heap back once a burst of connections is over: glibc keeps
/// what thousands of closed connections freed (19 MiB after 5,000,
/// against 4 MiB idle) until asked.
async fn trim_after_bursts(routes: Routes) {
    let mut bursts = limits::BurstEnd::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if bursts.observe(routes.open_connections()) {
            corefit_sys::trim_heap();
        }
    }
}

fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::EMFILE | nix::libc::ENFILE | nix::libc::ENOBUFS | nix::libc::ENOMEM)
    )
}

/// Answers 503 and closes after the client has read it (bounded).
async fn refuse(client: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = client.try_write(BUSY);
        let _ = nix::sys::socket::shutdown(
            std::os::fd::AsRawFd::as_raw_fd(&client),
            nix::sys::socket::Shutdown::Write,
        );
        // Drain what the client sent, so closing does not reset the answer.
        let mut sink = [0u8; 1024];
        loop {
            if client.readable().await.is_err() {
                return;
            }
            match client.try_read(&mut sink) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    })
    .await;
}
