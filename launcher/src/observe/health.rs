//! The admin endpoint's documents: `GET /health` (the cluster) and
//! `GET /health/workers` (one entry per worker).

use serde_json::{json, Value};

use super::snapshot::ClusterSnapshot;

/// `/health`: the status code (200 when every desired worker is ready,
/// 503 otherwise) and the cluster document.
pub fn health(s: &ClusterSnapshot) -> (u16, Value) {
    let code = if s.healthy() { 200 } else { 503 };
    let doc = json!({
        "status": if s.healthy() { "ok" } else { "degraded" },
        "mode": s.mode,
        "platform": s.platform,
        "socket": s.socket,
        "workers": { "desired": s.desired, "active": s.workers.len(), "ready": s.ready() },
        "reloading": s.reloading,
        "cpu": { "limit": s.cpu_limit },
        "cgroup": s.cgroup,
        "memory": { "limit_bytes": s.memory_limit_bytes, "used_bytes": s.memory_used_bytes() },
        "restarts": s.restarts_by_reason,
        "uptime_seconds": s.uptime_seconds,
    });
    (code, doc)
}

/// `/health/workers`.
pub fn workers(s: &ClusterSnapshot) -> Value {
    json!({ "workers": s.workers })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::snapshot::{example, WorkerPhase};

    #[test]
    fn degraded_until_all_ready() {
        let mut s = example();
        let (code, doc) = health(&s);
        assert_eq!(code, 503);
        assert_eq!(doc["status"], "degraded");
        assert_eq!(doc["workers"]["ready"], 1);
        assert_eq!(doc["memory"]["used_bytes"], 70u64 << 20);
        assert_eq!(doc["cgroup"]["throttling"]["throttled_periods"], 30);
        assert_eq!(doc["cgroup"]["throttled_percent"], 25.0);
        assert_eq!(doc["cgroup"]["cpu_pressure"]["some"]["avg10"], 12.5);
        s.workers[1].phase = WorkerPhase::Ready;
        assert_eq!(health(&s).0, 200);
        let w = workers(&s);
        assert_eq!(w["workers"][1]["restarts"], 3);
        assert_eq!(w["workers"][0]["phase"], "ready");
    }
}
