//! The byte moves of a proxied connection: reading into a buffer that
//! exists only while bytes arrive, writing with back-pressure, and
//! connecting to a worker.

use std::io;
use std::net::SocketAddr;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use super::affinity::Want;
use super::routes::{Routes, WAIT_FOR_WORKER};
use crate::supervise::logs::Logger;

/// Bytes read at once from either side.
pub const READ_CHUNK: usize = 16 * 1024;

/// Reads what is there into `buf` (allocating its space only now); 0 at
/// end of stream. An empty buffer gives its memory back while waiting.
/// (A read that fills less than the space given clears the socket's
/// readiness in tokio: no extra `recv` that would only say EAGAIN.)
pub async fn read_into(r: &mut ReadHalf<'_>, buf: &mut BytesMut) -> io::Result<usize> {
    if buf.is_empty() && buf.capacity() > 0 {
        *buf = BytesMut::new();
    }
    r.readable().await?;
    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
    r.read_buf(buf).await
}

/// Writes all of `bytes`, waiting for room as needed.
pub async fn write_all(w: &mut WriteHalf<'_>, bytes: &[u8]) -> io::Result<()> {
    w.write_all(bytes).await
}

/// Picks a worker and connects; a worker that refuses (it just died and
/// is not unrouted yet) is skipped for the next pick, so a worker
/// restarted under the same id, on a new port, is taken. `want`: the
/// connection's affinity.
pub async fn connect(
    routes: &Routes,
    peer: SocketAddr,
    want: Want,
    logger: Logger,
) -> Option<(usize, SocketAddr, TcpStream)> {
    let mut tried = None;
    for _ in 0..4 {
        let Some((id, addr)) = routes.pick_or_wait(tried, want).await else {
            logger.warn(&format!(
                "proxy: no worker ready within {}s for the connection from {peer}; answering 503",
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
                tried = Some(addr);
            }
        }
    }
    None
}
