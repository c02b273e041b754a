//! One client connection, end to end: read a whole request head (bounded
//! in size and time) before any worker is picked, connect, then move both
//! directions at once, each framed by its parser, until the worker's side
//! ends; then [`exchange::after_upstream`] says reconnect, resend or close.
//!
//! Both directions run concurrently inside one task (`select!` over two
//! futures that share the two sockets by reference), so neither side's
//! back-pressure can stall the other: the client→worker copy waits only on
//! the worker's socket, the worker→client copy only on the client's.
//! Each direction holds at most one read buffer (16 KiB), allocated when
//! bytes arrive and released whenever it is empty and waiting.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::ReadHalf;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::affinity::{self, Affinity, Want};
use super::exchange::{after_upstream, InFlight, Next, Sent, UpstreamEnd};
use super::framer::{RequestFramer, RequestSegment, ResponseFramer, ResponseSegment};
use super::head::{AfterResponse, RequestHead};
use super::routes::Routes;
use super::settings::ProxySettings;
use super::wire::{connect, read_into, write_all};
use crate::supervise::logs::Logger;

/// Answers of corefit's own.
pub const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n";
pub const NO_WORKER: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

/// What a connection needs from the proxy.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub routes: Routes,
    pub settings: ProxySettings,
    pub logger: Logger,
}

/// How a connection ends on the client's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Close without a word (the client closed, or sent nothing).
    Silent,
    /// Answer these bytes, then close.
    Answer(&'static [u8]),
}

/// The framing state both directions share.
#[derive(Debug)]
struct Shared {
    requests: RequestFramer,
    inflight: InFlight,
    client_done: bool,
    closed_by_response: bool,
}

/// Serves one client connection until it ends.
pub async fn relay(mut client: TcpStream, peer: SocketAddr, ctx: &Ctx) {
    let _ = client.set_nodelay(true);
    let local = client.local_addr().ok();
    let max_head = ctx.settings.max_head;
    let shared = Mutex::new(Shared {
        requests: RequestFramer::new(max_head),
        inflight: InFlight::default(),
        client_done: false,
        closed_by_response: false,
    });
    let mut cbuf = BytesMut::new();
    let mut outbox: Vec<Bytes> = Vec::new();
    let mut resends = 0;
    let mut first = true;
    let mut want = Want::Any;
    loop {
        if outbox.is_empty() {
            match await_request(
                &mut client,
                &shared,
                &mut cbuf,
                &mut outbox,
                peer,
                ctx,
                first,
            )
            .await
            {
                // A new request head: what it asks of the balancer.
                Ok(true) => {
                    if let Some(head) = outbox.first() {
                        want = ctx.routes.want(&ctx.settings, head, peer.ip());
                    }
                }
                Ok(false) => {}
                Err(ending) => return finish(&mut client, ending).await,
            }
        }
        first = false;
        let Some((id, addr, mut upstream)) = connect(&ctx.routes, peer, want, ctx.logger).await
        else {
            return finish(&mut client, Ending::Answer(NO_WORKER)).await;
        };
        // `cookie`: a connection that did not name this worker is told to.
        let set_cookie = (ctx.settings.affinity == Affinity::Cookie && want != Want::Slot(id))
            .then(|| ctx.routes.cookies().set_cookie(id));
        let preface = local.and_then(|l| ctx.settings.forwarding.proxy_header(peer, l));
        let mut resp = ResponseFramer::new(max_head);
        let mut ubuf = BytesMut::new();
        // Boxed: a connection waiting for its first request (the common
        // idle state) then holds a small task, not room for the pump's.
        let end = Box::pin(pump(
            &mut client,
            &mut upstream,
            (id, addr),
            &shared,
            &mut cbuf,
            &mut ubuf,
            &mut resp,
            std::mem::take(&mut outbox),
            preface,
            set_cookie.as_deref(),
            peer,
            ctx,
        ))
        .await;
        let still_routed = ctx.routes.with(|b| {
            b.release(id, addr);
            b.is_routed(id, addr)
        });
        // A request written after the worker closed meets a reset that may
        // come after the FIN the pump ended on: the socket's error says so.
        let reset_after_close = matches!(
            upstream.take_error(),
            Ok(Some(e)) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe)
        );
        drop(upstream);
        let reset = match end {
            PumpEnd::Client(ending) => return finish(&mut client, ending).await,
            PumpEnd::Finished => return finish(&mut client, Ending::Silent).await,
            PumpEnd::ClientGone => return,
            PumpEnd::Moved(head) => {
                want = ctx.routes.want(&ctx.settings, &head, peer.ip());
                outbox.push(head);
                continue;
            }
            PumpEnd::Upstream { reset } => reset || reset_after_close,
        };
        let next = {
            let s = lock(&shared);
            let state = UpstreamEnd {
                response_open: !resp.at_head() || !ubuf.is_empty(),
                request_open: !s.requests.at_head(),
                worker_stopping: !still_routed,
                closed_by_response: s.closed_by_response,
                client_done: s.client_done,
                reset,
                resends,
            };
            after_upstream(&s.inflight, state, Instant::now())
        };
        match next {
            Next::Reconnect => {}
            Next::Resend(heads) => {
                resends += 1;
                ctx.logger.info(&format!(
                    "proxy: worker {id} closed a connection from {peer} while stopping, with {} request(s) unanswered; sending them to another worker",
                    heads.len()
                ));
                lock(&shared).inflight.resent(Instant::now());
                outbox = heads;
            }
            Next::Close => return finish(&mut client, Ending::Silent).await,
        }
    }
}

/// Closes the client's connection, after `ending`'s answer if any.
async fn finish(client: &mut TcpStream, ending: Ending) {
    if let Ending::Answer(bytes) = ending {
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(5), client.write_all(bytes)).await;
    }
    let _ = client.shutdown().await;
}

/// Reads until a whole request head is framed (put into `outbox` and
/// the in-flight queue; `Ok(true)`) or a piece of a body or tunnel
/// (`Ok(false)`), or the connection ends.
#[allow(clippy::too_many_arguments)]
async fn await_request(
    client: &mut TcpStream,
    shared: &Mutex<Shared>,
    cbuf: &mut BytesMut,
    outbox: &mut Vec<Bytes>,
    peer: SocketAddr,
    ctx: &Ctx,
    first: bool,
) -> Result<bool, Ending> {
    let idle_deadline = Instant::now()
        + if first {
            ctx.settings.header_timeout
        } else {
            ctx.settings.idle_timeout
        };
    let mut head_deadline = None;
    loop {
        let seg = lock(shared).requests.next(cbuf);
        match seg {
            Ok(Some(RequestSegment::Head(head))) => {
                let out = send_head(shared, cbuf, &head, peer, ctx);
                outbox.push(out);
                return Ok(true);
            }
            Ok(Some(RequestSegment::Body(p))) => outbox.push(cbuf.split_to(p.len).freeze()),
            Ok(Some(RequestSegment::Tunnel(n))) => outbox.push(cbuf.split_to(n).freeze()),
            Ok(None) => {}
            Err(e) => return Err(Ending::Answer(e.client_answer())),
        }
        if !outbox.is_empty() {
            return Ok(false);
        }
        if !cbuf.is_empty() && head_deadline.is_none() {
            // The first request's head counts from the connection's start.
            head_deadline = Some(if first {
                idle_deadline
            } else {
                Instant::now() + ctx.settings.header_timeout
            });
        }
        let deadline = head_deadline.unwrap_or(idle_deadline);
        let (mut reader, _) = client.split();
        match tokio::time::timeout_at(deadline.into(), read_into(&mut reader, cbuf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Err(Ending::Silent),
            Ok(Ok(_)) => {}
            Err(_) if cbuf.is_empty() => return Err(Ending::Silent),
            Err(_) => return Err(Ending::Answer(REQUEST_TIMEOUT)),
        }
    }
}

/// Takes the head at the front of `cbuf`, rewritten if forwarding fields
/// are on, and records it as sent.
fn send_head(
    shared: &Mutex<Shared>,
    cbuf: &mut BytesMut,
    head: &RequestHead,
    peer: SocketAddr,
    ctx: &Ctx,
) -> Bytes {
    let raw = cbuf.split_to(head.len).freeze();
    let forwarding = &ctx.settings.forwarding;
    let out = if forwarding.rewrites() {
        Bytes::from(forwarding.rewrite(&raw, peer.ip()))
    } else {
        raw
    };
    let replayable = head.idempotent && head.body.is_none() && !head.meta.upgrade;
    lock(shared).inflight.push(Sent {
        meta: head.meta,
        replay: replayable.then(|| out.clone()),
        sent_at: Instant::now(),
    });
    out
}

/// Why [`pump`] stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PumpEnd {
    /// The worker's side closed or failed; `reset`: with a reset, so it
    /// never read all it was sent.
    Upstream { reset: bool },
    /// End the client's connection this way.
    Client(Ending),
    /// The client closed and every request was answered.
    Finished,
    /// Writing to the client failed.
    ClientGone,
    /// The client's next request, with nothing in flight, came after
    /// corefit unrouted the worker (it is stopping it): this head goes to
    /// a routed worker instead, before the stopping one can close the
    /// connection under it.
    Moved(Bytes),
}

/// Moves both directions until one of them ends the exchange.
#[allow(clippy::too_many_arguments)]
async fn pump(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    (id, addr): (usize, SocketAddr),
    shared: &Mutex<Shared>,
    cbuf: &mut BytesMut,
    ubuf: &mut BytesMut,
    resp: &mut ResponseFramer,
    outbox: Vec<Bytes>,
    preface: Option<Vec<u8>>,
    set_cookie: Option<&str>,
    peer: SocketAddr,
    ctx: &Ctx,
) -> PumpEnd {
    // c2u waits on `answered` for responses; u2c on `client_done`.
    let (mut cr, mut cw) = client.split();
    let (mut ur, mut uw) = upstream.split();
    let answered = Notify::new();
    let client_closed = Notify::new();
    let c2u = async {
        if let Some(p) = preface {
            if let Err(e) = write_all(&mut uw, &p).await {
                return upstream_failed(&e);
            }
        }
        for chunk in outbox {
            if let Err(e) = write_all(&mut uw, &chunk).await {
                return upstream_failed(&e);
            }
        }
        loop {
            let seg = lock(shared).requests.next(cbuf);
            let chunk = match seg {
                Ok(Some(RequestSegment::Head(head))) => {
                    let idle = lock(shared).inflight.is_empty();
                    if idle && !ctx.routes.with(|b| b.is_routed(id, addr)) {
                        return PumpEnd::Moved(send_head(shared, cbuf, &head, peer, ctx));
                    }
                    send_head(shared, cbuf, &head, peer, ctx)
                }
                Ok(Some(RequestSegment::Body(p))) => cbuf.split_to(p.len).freeze(),
                Ok(Some(RequestSegment::Tunnel(n))) => cbuf.split_to(n).freeze(),
                Ok(None) => match wait_client(&mut cr, shared, cbuf, &answered, ctx).await {
                    ClientRead::More => continue,
                    ClientRead::Closed => {
                        lock(shared).client_done = true;
                        let _ = uw.shutdown().await;
                        client_closed.notify_one();
                        return std::future::pending().await;
                    }
                    ClientRead::End(ending) => return PumpEnd::Client(ending),
                },
                Err(e) => {
                    // A head that cannot be framed never reaches a worker:
                    // refused once every earlier request was answered.
                    loop {
                        let waiting = answered.notified();
                        if lock(shared).inflight.is_empty() {
                            break;
                        }
                        waiting.await;
                    }
                    return PumpEnd::Client(Ending::Answer(e.client_answer()));
                }
            };
            if let Err(e) = write_all(&mut uw, &chunk).await {
                return upstream_failed(&e);
            }
        }
    };
    let u2c = async {
        loop {
            let front = lock(shared).inflight.front();
            match resp.next(ubuf, front) {
                Ok(Some(ResponseSegment::Head(head))) => {
                    let mut bytes = ubuf.split_to(head.len).freeze();
                    if let Some(field) = set_cookie.filter(|_| head.then != AfterResponse::Interim)
                    {
                        bytes = Bytes::from(affinity::with_field(&bytes, field));
                    }
                    {
                        let mut s = lock(shared);
                        match head.then {
                            AfterResponse::Interim | AfterResponse::Body(_) => {
                                s.inflight.answering()
                            }
                            AfterResponse::Done => s.inflight.answered(),
                            AfterResponse::Tunnel => {
                                s.inflight.answered();
                                s.requests.switched(true);
                            }
                        }
                        let is_final = head.then != AfterResponse::Interim;
                        if is_final
                            && front.is_some_and(|m| m.upgrade)
                            && head.then != AfterResponse::Tunnel
                        {
                            s.requests.switched(false);
                        }
                        if is_final && head.close {
                            s.closed_by_response = true;
                        }
                    }
                    answered.notify_one();
                    if write_all(&mut cw, &bytes).await.is_err() {
                        return PumpEnd::ClientGone;
                    }
                }
                Ok(Some(ResponseSegment::Body(piece))) => {
                    let bytes = ubuf.split_to(piece.len).freeze();
                    if piece.last {
                        lock(shared).inflight.answered();
                        answered.notify_one();
                    }
                    if write_all(&mut cw, &bytes).await.is_err() {
                        return PumpEnd::ClientGone;
                    }
                }
                Ok(Some(ResponseSegment::Tunnel(n))) => {
                    let bytes = ubuf.split_to(n).freeze();
                    if write_all(&mut cw, &bytes).await.is_err() {
                        return PumpEnd::ClientGone;
                    }
                }
                Ok(None) => {
                    {
                        let s = lock(shared);
                        if s.client_done
                            && s.inflight.is_empty()
                            && resp.at_head()
                            && ubuf.is_empty()
                        {
                            return PumpEnd::Finished;
                        }
                    }
                    tokio::select! {
                        r = read_into(&mut ur, ubuf) => match r {
                            Ok(0) => return PumpEnd::Upstream { reset: false },
                            Err(e) => return upstream_failed(&e),
                            Ok(_) => {}
                        },
                        _ = client_closed.notified() => {}
                    }
                }
                Err(e) => {
                    // The worker's bytes cannot be framed: what it sends
                    // goes through as it is until it closes, then the
                    // client's connection ends (nothing is resent).
                    ctx.logger.warn(&format!(
                        "proxy: a worker's response to {peer} cannot be framed ({e}); passing it through as it is, then closing"
                    ));
                    loop {
                        let bytes = ubuf.split().freeze();
                        if write_all(&mut cw, &bytes).await.is_err() {
                            return PumpEnd::ClientGone;
                        }
                        match read_into(&mut ur, ubuf).await {
                            Ok(0) | Err(_) => return PumpEnd::Client(Ending::Silent),
                            Ok(_) => {}
                        }
                    }
                }
            }
        }
    };
    tokio::select! {
        end = c2u => end,
        end = u2c => end,
    }
}

/// The worker's side failed with `e`.
fn upstream_failed(e: &std::io::Error) -> PumpEnd {
    PumpEnd::Upstream {
        reset: e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

/// What waiting on the client gave.
enum ClientRead {
    More,
    Closed,
    End(Ending),
}

/// Waits for the client's next bytes, or for an upgrade's answer. Idle
/// and head deadlines apply only while no request is in flight.
async fn wait_client(
    client: &mut ReadHalf<'_>,
    shared: &Mutex<Shared>,
    cbuf: &mut BytesMut,
    answered: &Notify,
    ctx: &Ctx,
) -> ClientRead {
    let waiting = answered.notified();
    if lock(shared).requests.awaiting_switch() {
        // Nothing is framed until the upgrade's answer; read nothing.
        waiting.await;
        return ClientRead::More;
    }
    drop(waiting);
    let idle = {
        let s = lock(shared);
        s.inflight.is_empty() && s.requests.at_head()
    };
    let deadline = idle.then(|| {
        Instant::now()
            + if cbuf.is_empty() {
                ctx.settings.idle_timeout
            } else {
                ctx.settings.header_timeout
            }
    });
    let read = match deadline {
        Some(d) => match tokio::time::timeout_at(d.into(), read_into(client, cbuf)).await {
            Ok(r) => r,
            Err(_) if cbuf.is_empty() => return ClientRead::End(Ending::Silent),
            Err(_) => return ClientRead::End(Ending::Answer(REQUEST_TIMEOUT)),
        },
        None => read_into(client, cbuf).await,
    };
    match read {
        Ok(0) | Err(_) => ClientRead::Closed,
        Ok(_) => ClientRead::More,
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    // Poisoned only if a holder panicked; the state is still usable.
    shared.lock().unwrap_or_else(|p| p.into_inner())
}
