//! `GET /metrics`: the snapshot in the OpenMetrics text format, encoded by
//! `prometheus-client` from a registry built fresh for each scrape (the
//! supervisor's state is the source of truth; nothing is kept here).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

use super::snapshot::ClusterSnapshot;

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;
type FloatCounter = Counter<f64, AtomicU64>;

/// Renders every metric.
pub fn render(s: &ClusterSnapshot) -> String {
    let mut registry = Registry::with_prefix("corefit");

    registry.register(
        "workers_desired",
        "Workers wanted now",
        gauge(s.desired as u64),
    );
    registry.register(
        "workers_ready",
        "Workers ready to serve",
        gauge(s.ready() as u64),
    );
    registry.register(
        "workers_active",
        "Worker processes alive or restarting",
        gauge(s.workers.len() as u64),
    );

    let restarts = Family::<Labels, Counter>::default();
    for (reason, n) in &s.restarts_by_reason {
        restarts
            .get_or_create(&vec![("reason".to_owned(), reason.clone())])
            .inc_by(*n);
    }
    registry.register("worker_restarts", "Worker restarts by reason", restarts);

    let rss = Family::<Labels, Gauge>::default();
    let cpu = Family::<Labels, FloatCounter>::default();
    for w in &s.workers {
        let labels = vec![("worker".to_owned(), w.id.to_string())];
        rss.get_or_create(&labels).set(saturate(w.rss_bytes));
        cpu.get_or_create(&labels).inc_by(w.cpu_seconds.max(0.0));
    }
    registry.register_with_unit(
        "worker_resident_memory",
        "Resident memory of a worker's process tree",
        Unit::Bytes,
        rss,
    );
    registry.register_with_unit(
        "worker_cpu",
        "CPU time of a worker's process tree",
        Unit::Seconds,
        cpu,
    );

    let info = Info::new(vec![
        ("mode".to_owned(), s.mode.clone()),
        ("platform".to_owned(), s.platform.clone()),
        ("socket".to_owned(), s.socket.clone()),
    ]);
    registry.register("plan", "The plan corefit runs", info);

    registry.register(
        "cpu_limit_cores",
        "Effective CPUs detected (cgroup quota, cpuset, affinity, host)",
        float_gauge(s.cpu_limit),
    );
    if let Some(limit) = s.memory_limit_bytes {
        registry.register_with_unit(
            "memory_limit",
            "Memory limit detected",
            Unit::Bytes,
            gauge(limit),
        );
    }
    if let Some(p) = &s.proxy {
        registry.register(
            "proxy_connections",
            "Client connections the proxy holds now",
            gauge(p.open),
        );
        registry.register(
            "proxy_connections_max",
            "Client connections the proxy holds at most (--max-connections)",
            gauge(p.max),
        );
        let refused: Counter = Counter::default();
        refused.inc_by(p.refused);
        registry.register(
            "proxy_connections_refused",
            "Client connections answered 503 because the most allowed were open",
            refused,
        );
    }
    if let Some(c) = &s.cgroup {
        cgroup_metrics(&mut registry, c);
    }
    registry.register_with_unit(
        "uptime",
        "Seconds since corefit started",
        Unit::Seconds,
        float_gauge(s.uptime_seconds),
    );

    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
}

/// Throttling (counters, as the kernel's) and pressure (stall seconds as
/// counters, the 10 s average as a gauge) of corefit's cgroup.
fn cgroup_metrics(registry: &mut Registry, c: &super::throttle::CgroupSnapshot) {
    if let Some(t) = &c.stats.throttling {
        registry.register(
            "cgroup_cpu_periods",
            "CFS enforcement periods in which corefit's cgroup had runnable threads (cpu.stat nr_periods)",
            counter(t.periods),
        );
        registry.register(
            "cgroup_cpu_throttled_periods",
            "Of those, periods in which the cgroup ran out of CPU quota (cpu.stat nr_throttled)",
            counter(t.throttled_periods),
        );
        let secs = FloatCounter::default();
        secs.inc_by(t.throttled_seconds.max(0.0));
        registry.register_with_unit(
            "cgroup_cpu_throttled",
            "Time threads of the cgroup waited for the next CFS period",
            Unit::Seconds,
            secs,
        );
    }
    if let Some(p) = c.throttled_percent {
        registry.register(
            "cgroup_cpu_throttled_recent_ratio",
            "Share of the periods over the last 30 s that were throttled",
            float_gauge(p / 100.0),
        );
    }
    let episodes: Counter = Counter::default();
    episodes.inc_by(c.throttling_episodes);
    registry.register(
        "cgroup_cpu_throttling_episodes",
        "Throttling episodes corefit warned about",
        episodes,
    );
    let stalled = Family::<Labels, FloatCounter>::default();
    let avg10 = Family::<Labels, FloatGauge>::default();
    for (resource, p) in [
        ("cpu", &c.stats.cpu_pressure),
        ("memory", &c.stats.memory_pressure),
        ("io", &c.stats.io_pressure),
    ] {
        let Some(p) = p else { continue };
        for (kind, stall) in [("some", Some(p.some)), ("full", p.full)] {
            let Some(stall) = stall else { continue };
            let labels = vec![
                ("resource".to_owned(), resource.to_owned()),
                ("kind".to_owned(), kind.to_owned()),
            ];
            stalled
                .get_or_create(&labels)
                .inc_by(stall.total_seconds.max(0.0));
            avg10.get_or_create(&labels).set(stall.avg10 / 100.0);
        }
    }
    registry.register_with_unit(
        "cgroup_pressure_stalled",
        "Time tasks of corefit's cgroup stalled on a resource (PSI total)",
        Unit::Seconds,
        stalled,
    );
    registry.register(
        "cgroup_pressure_avg10_ratio",
        "Share of the last 10 s tasks of the cgroup stalled on a resource (PSI avg10)",
        avg10,
    );
}

fn counter(value: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(value);
    c
}

/// A gauge holding `value`, capped at `i64::MAX`.
fn gauge(value: u64) -> Gauge {
    let g = Gauge::default();
    g.set(saturate(value));
    g
}

fn float_gauge(value: f64) -> FloatGauge {
    let g = FloatGauge::default();
    g.set(value);
    g
}

fn saturate(value: u64) -> i64 {
    value.min(i64::MAX as u64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::snapshot::example;

    #[test]
    fn renders_every_family() {
        let text = render(&example());
        for line in [
            "corefit_workers_desired 2",
            "corefit_workers_ready 1",
            "corefit_workers_active 2",
            "corefit_worker_restarts_total{reason=\"crash\"} 3",
            "corefit_worker_resident_memory_bytes{worker=\"0\"} 52428800",
            "corefit_worker_cpu_seconds_total{worker=\"0\"} 40.25",
            "corefit_plan_info{mode=\"cluster\",platform=\"kubernetes\",socket=\"proxy\"} 1",
            "corefit_cpu_limit_cores 2.0",
            "corefit_memory_limit_bytes 1073741824",
            "corefit_proxy_connections 7",
            "corefit_proxy_connections_max 9936",
            "corefit_proxy_connections_refused_total 2",
            "corefit_cgroup_cpu_periods_total 120",
            "corefit_cgroup_cpu_throttled_periods_total 30",
            "corefit_cgroup_cpu_throttled_seconds_total 2.5",
            "corefit_cgroup_cpu_throttled_recent_ratio 0.25",
            "corefit_cgroup_cpu_throttling_episodes_total 1",
            "corefit_cgroup_pressure_stalled_seconds_total{resource=\"cpu\",kind=\"some\"} 4.5",
            "corefit_cgroup_pressure_avg10_ratio{resource=\"cpu\",kind=\"some\"} 0.125",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
    }
}
