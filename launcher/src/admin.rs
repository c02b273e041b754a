//! The admin HTTP endpoint (`--admin-addr`): `GET /health`,
//! `GET /health/workers` and `GET /metrics`, served from the latest
//! [`ClusterSnapshot`] the supervisor published on a watch channel.
//!
//! It only reads: it holds a `watch::Receiver` and nothing that could
//! change the cluster, and any method but GET and HEAD is refused (405,
//! with `Allow: GET, HEAD`), on every path.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::observe::{health, metrics, ClusterSnapshot};

/// A response as plain data (the routing is pure and unit-tested).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

const JSON: &str = "application/json";
/// The only methods served (the `Allow` header of a 405).
const ALLOWED: &str = "GET, HEAD";

/// Routes one request.
pub fn route(method: &Method, path: &str, snapshot: &ClusterSnapshot) -> Reply {
    if method != Method::GET && method != Method::HEAD {
        return Reply {
            status: 405,
            content_type: "text/plain; charset=utf-8",
            body: "the admin endpoint is read-only: use GET\n".to_owned(),
        };
    }
    match path.split('?').next().unwrap_or("") {
        "/health" | "/health/" => {
            let (status, doc) = health::health(snapshot);
            Reply {
                status,
                content_type: JSON,
                body: doc.to_string(),
            }
        }
        "/health/workers" => Reply {
            status: 200,
            content_type: JSON,
            body: health::workers(snapshot).to_string(),
        },
        "/metrics" => Reply {
            status: 200,
            content_type: metrics::CONTENT_TYPE,
            body: metrics::render(snapshot),
        },
        _ => Reply {
            status: 404,
            content_type: "text/plain; charset=utf-8",
            body: "not found: try /health, /health/workers or /metrics\n".to_owned(),
        },
    }
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, snapshots: watch::Receiver<ClusterSnapshot>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors or similar: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let rx = snapshots.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                // As of this request: the uptimes move between publishes.
                let snapshot = rx.borrow().at(std::time::Instant::now());
                async move {
                    let reply = route(req.method(), req.uri().path(), &snapshot);
                    let head = req.method() == Method::HEAD;
                    let mut resp = Response::new(Full::new(if head {
                        Bytes::new()
                    } else {
                        Bytes::from(reply.body)
                    }));
                    *resp.status_mut() = StatusCode::from_u16(reply.status)
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    if let Ok(v) = reply.content_type.parse() {
                        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
                    }
                    if reply.status == 405 {
                        // RFC 9110 §15.5.6: a 405 lists the methods allowed.
                        resp.headers_mut().insert(
                            hyper::header::ALLOW,
                            hyper::header::HeaderValue::from_static(ALLOWED),
                        );
                    }
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::snapshot::example;

    #[test]
    fn routes() {
        let s = example();
        let r = route(&Method::GET, "/health", &s);
        assert_eq!((r.status, r.content_type), (503, JSON));
        assert!(r.body.contains("\"degraded\""));
        assert_eq!(route(&Method::GET, "/health/workers", &s).status, 200);
        let m = route(&Method::GET, "/metrics?x=1", &s);
        assert_eq!(m.status, 200);
        assert!(m.body.contains("corefit_workers_desired 2"));
        assert_eq!(route(&Method::GET, "/nope", &s).status, 404);
        // Nothing but GET and HEAD, on any path, known or not.
        let writes = [
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
            Method::TRACE,
            Method::CONNECT,
            Method::from_bytes(b"SCALE").unwrap(),
        ];
        for method in writes {
            for path in [
                "/health",
                "/health/workers",
                "/metrics",
                "/",
                "/stop",
                "/x?y",
            ] {
                assert_eq!(route(&method, path, &s).status, 405, "{method} {path}");
            }
        }
    }

    #[tokio::test]
    async fn serves_over_tcp_and_follows_the_latest_snapshot() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(example());
        let server = tokio::spawn(serve(listener, rx));
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        assert!(get("/health").await.starts_with("HTTP/1.1 503"));
        let mut healthy = example();
        healthy.workers[1].phase = crate::observe::WorkerPhase::Ready;
        tx.send(healthy).unwrap();
        let out = get("/health").await;
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(out.contains("\"status\":\"ok\""), "{out}");
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 405"), "{out}");
        assert!(
            out.to_ascii_lowercase()
                .contains("\r\nallow: get, head\r\n"),
            "{out}"
        );
        server.abort();
    }
}
