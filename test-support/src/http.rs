//! Plain HTTP/1.1 to 127.0.0.1 (no client dependency): free ports, one
//! GET per connection, the apps' `whoami` JSON, corefit's admin endpoint
//! and Prometheus samples.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use crate::wait::wait_for;

/// A TCP port free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// `count` consecutive free ports (for `--socket none`).
pub fn free_port_range(count: u16) -> u16 {
    for _ in 0..100 {
        let base = free_port();
        if base.checked_add(count).is_none() {
            continue;
        }
        let all_free = (base..base + count).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no range of {count} free ports found");
}

/// A plain HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.body.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// GET `path` from 127.0.0.1:`port` on a new connection.
pub fn get(port: u16, path: &str, timeout: Duration) -> std::io::Result<Response> {
    let addr = ("127.0.0.1", port);
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad(format!("no head: {text:?}")))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad head: {head:?}")))?;
    Ok(Response {
        status,
        body: body.to_owned(),
    })
}

/// GET `/` and return (pid, worker id) from the app's JSON.
pub fn whoami(port: u16) -> std::io::Result<(i32, String)> {
    let r = get(port, "/", Duration::from_secs(5))?;
    if r.status != 200 {
        return Err(std::io::Error::other(format!("status {}", r.status)));
    }
    let v = r.json();
    Ok((
        v["pid"].as_i64().expect("pid") as i32,
        v["worker"].as_str().unwrap_or("").to_owned(),
    ))
}

/// Requests `/` until `n` distinct pids answered (or the limit passes);
/// returns pid -> worker id.
pub fn distinct_workers(port: u16, n: usize, limit: Duration) -> BTreeMap<i32, String> {
    let mut seen = BTreeMap::new();
    wait_for(
        limit,
        &format!("{n} distinct worker pids on port {port}"),
        || {
            if let Ok((pid, id)) = whoami(port) {
                seen.insert(pid, id);
            }
            (seen.len() >= n).then_some(())
        },
    );
    seen
}

/// The element of the JSON array `list` whose `field` is `value`
/// (panics when there is none).
pub fn find_by<'a>(
    list: &'a serde_json::Value,
    field: &str,
    value: serde_json::Value,
) -> &'a serde_json::Value {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .find(|item| item[field] == value)
        .unwrap_or_else(|| panic!("no {field} = {value} in {list}"))
}

/// GET `path` on the admin port: (status, body).
pub fn admin(port: u16, path: &str) -> (u16, String) {
    let r = get(port, path, Duration::from_secs(5)).expect("admin endpoint answers");
    (r.status, r.body)
}

/// `GET path` on the admin endpoint, as JSON (None while it does not answer).
pub fn admin_json(admin: u16, path: &str) -> Option<serde_json::Value> {
    let r = get(admin, path, Duration::from_secs(5)).ok()?;
    serde_json::from_str(r.body.trim()).ok()
}

/// Restarts counted for `reason` by `/health` (0 when none yet).
pub fn restarts(admin: u16, reason: &str) -> u64 {
    admin_json(admin, "/health")
        .and_then(|d| d["restarts"][reason].as_u64())
        .unwrap_or(0)
}

/// `corefit_worker_restarts_total{reason="..."}` from `/metrics`.
pub fn metric_restarts(admin: u16, reason: &str) -> u64 {
    let Ok(r) = get(admin, "/metrics", Duration::from_secs(5)) else {
        return 0;
    };
    let sample = format!("corefit_worker_restarts_total{{reason=\"{reason}\"}}");
    metric_value(&r.body, &sample) as u64
}

/// (worker id, pid) of every worker `/health/workers` shows as ready.
pub fn ready_workers(admin: u16) -> Vec<(u64, i32)> {
    let Some(doc) = admin_json(admin, "/health/workers") else {
        return Vec::new();
    };
    doc["workers"]
        .as_array()
        .map(|ws| {
            ws.iter()
                .filter(|w| w["phase"] == "ready")
                .filter_map(|w| Some((w["id"].as_u64()?, w["pid"].as_i64()? as i32)))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `n` workers with distinct ids are ready; returns them.
pub fn wait_ready(admin: u16, n: usize, limit: Duration) -> Vec<(u64, i32)> {
    wait_for(limit, &format!("{n} ready workers"), || {
        let ws = ready_workers(admin);
        let ids: BTreeSet<u64> = ws.iter().map(|w| w.0).collect();
        (ids.len() == n && ws.len() == n).then_some(ws)
    })
}

/// The value of one Prometheus sample line (`name{labels}`), summed over
/// the lines that carry it; 0 when absent.
pub fn metric_value(text: &str, sample: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(sample))
        .filter_map(|rest| rest.strip_prefix(' '))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .sum()
}

/// Sum of every sample of a metric family (all label sets).
pub fn metric_sum(text: &str, family: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next())
        .filter_map(|v| v.parse::<f64>().ok())
        .sum()
}

/// A GET to `addr` ("127.0.0.1:PORT") from async code: (status, body),
/// None when it does not answer within 2 s (connect) and 5 s (response).
#[cfg(feature = "operator")]
pub async fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((code, body))
}
