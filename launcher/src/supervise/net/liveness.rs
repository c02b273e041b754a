//! Liveness: whether a ready worker still answers HTTP on its own port
//! (`--liveness-path`). The runtime probes on an interval; the machine
//! counts failures in a row.

/// `GET path` on `addr`: true on a 2xx or 3xx status line within `timeout`.
pub async fn http_probe(
    addr: std::net::SocketAddr,
    path: &str,
    timeout: std::time::Duration,
) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: corefit-liveness\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.ok()?;
        Some(head)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Some(head)) => head.starts_with(b"HTTP/1.") && matches!(head[9], b'2' | b'3'),
        _ => false,
    }
}
