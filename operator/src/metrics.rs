//! Prometheus metrics: reconciles, errors by reason, reconcile duration,
//! and every write the operator makes to the API server (by kind and
//! verb), so "no writes when idle" can be checked from outside.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub kind: String,
    pub verb: String,
}

/// The operator's metrics, cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub reconciles: Counter,
    pub errors: Family<ErrorLabels, Counter>,
    pub duration: Histogram,
    pub writes: Family<WriteLabels, Counter>,
    /// 1 while this process reconciles (the leader, or with no election).
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("corefit_operator");
        let reconciles = Counter::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let writes = Family::<WriteLabels, Counter>::default();
        registry.register("reconciles", "Reconciles started", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by reason",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            duration.clone(),
        );
        registry.register(
            "api_writes",
            "Writes sent to the API server, by kind and verb",
            writes.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this process holds the lease and reconciles",
            leader.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            leader,
            reconciles,
            errors,
            duration,
            writes,
        }
    }

    pub fn error(&self, reason: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn write(&self, kind: &str, verb: &str) {
        self.writes
            .get_or_create(&WriteLabels {
                kind: kind.to_owned(),
                verb: verb.to_owned(),
            })
            .inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_by_label() {
        let m = Metrics::new();
        m.reconciles.inc();
        m.error("MissingImage");
        m.error("MissingImage");
        m.write("Deployment", "apply");
        let text = m.render();
        assert!(
            text.contains("corefit_operator_reconciles_total 1"),
            "{text}"
        );
        assert!(
            text.contains(r#"corefit_operator_reconcile_errors_total{reason="MissingImage"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"corefit_operator_api_writes_total{kind="Deployment",verb="apply"} 1"#),
            "{text}"
        );
        assert!(text.contains("corefit_operator_reconcile_duration_seconds_bucket"));
    }
}
