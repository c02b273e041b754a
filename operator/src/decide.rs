//! Strategy -> decision, through the launcher's own decision matrix
//! ([`corefit_plan::plan_for_pod`]). The pod's resources (and the largest
//! node's CPUs) are the plan's facts, the spec's scaling settings become
//! its overrides, and the strategy picks who adds capacity:
//!
//! ```text
//! Horizontal  mode forced single: 1 worker per pod, replicas scale
//! Vertical    floor(pod CPUs) workers per pod, bounded by memory
//! Auto        the plan's rules (>= 2 whole CPUs -> that many workers,
//!             else 1); 2 or more workers -> vertical, else horizontal
//! ```

use corefit_plan::facts::Hint;
use corefit_plan::overrides::{Overrides, Sourced, WorkerChoice};
use corefit_plan::{plan_for_pod, Mode, Platform, PlatformKind, PodResources};

use crate::types::Strategy;
use crate::validate::Checked;

/// What the operator knows of the cluster, beyond the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    /// The CPUs of the largest node: a pod never gets more, even when its
    /// limit says so.
    pub node_cpus: u32,
    /// The launcher image for `launcher.mode: InitContainer` apps that name
    /// none.
    pub launcher_image: Option<String>,
}

impl Default for ClusterInfo {
    fn default() -> Self {
        ClusterInfo {
            node_cpus: 64,
            launcher_image: None,
        }
    }
}

/// Who adds capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scaling {
    Horizontal,
    Vertical,
}

impl Scaling {
    pub fn as_str(self) -> &'static str {
        match self {
            Scaling::Horizontal => "horizontal",
            Scaling::Vertical => "vertical",
        }
    }
}

/// The decision for one app.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub mode: Mode,
    pub workers: u32,
    pub scaling: Scaling,
    pub replicas: i32,
    /// Every step, in words (the plan's reasons, then the strategy's).
    pub reasons: Vec<String>,
}

/// Decides mode, workers per pod and scaling for a checked spec.
pub fn decide(app: &Checked, info: &ClusterInfo) -> Decision {
    // The CPU the pod is guaranteed (its request) sizes the workers; the
    // memory bound is the limit (what the launcher sees), else the request.
    let pod = PodResources {
        node_cpus: info.node_cpus,
        cpus: app.cpu.request.as_ref().map(|s| Hint {
            value: s.value as f64 / 1000.0,
            variable: s.field.to_owned(),
        }),
        memory: app
            .memory
            .limit
            .as_ref()
            .or(app.memory.request.as_ref())
            .map(|s| Hint {
                value: s.value,
                variable: s.field.to_owned(),
            }),
    };
    let platform = Platform::new(
        PlatformKind::Kubernetes,
        "the operator runs this app as a Deployment",
    );

    let mut overrides = Overrides {
        memory_per_worker: app
            .memory_per_worker
            .map(|b| sourced(b, "spec.scaling.memoryPerWorker")),
        workers: app.workers.map(|w| sourced(w, "spec.scaling.workers")),
        ..Overrides::default()
    };
    if app.strategy == Strategy::Horizontal {
        // One worker, asked as a count: the plan's reason then reads
        // "spec.scaling.strategy=Horizontal asks for 1 worker" (a forced
        // mode would read "<source>=single", naming the strategy twice).
        overrides.workers = Some(sourced(
            WorkerChoice::Count(1),
            "spec.scaling.strategy=Horizontal",
        ));
    }
    if app.strategy == Strategy::Vertical && overrides.workers.is_none() {
        overrides.workers = Some(sourced(
            WorkerChoice::Auto,
            "spec.scaling.strategy=Vertical",
        ));
    }

    let p = plan_for_pod(&pod, &platform, &overrides);
    // The plan's own closing line speaks of a single instance on its
    // platform; the operator's closing line below replaces it.
    let mut reasons: Vec<String> = p
        .reasons
        .iter()
        .filter(|r| !r.starts_with("decision: "))
        .cloned()
        .collect();
    reasons.extend(cpu_request_reason(app));
    reasons.extend(p.warnings.iter().map(|w| format!("warning: {w}")));
    let scaling = match app.strategy {
        Strategy::Horizontal => {
            reasons.push(
                "strategy Horizontal: 1 worker per pod; capacity comes from replicas".to_owned(),
            );
            Scaling::Horizontal
        }
        Strategy::Vertical => {
            reasons.push(format!(
                "strategy Vertical: {} worker{} per pod from the pod's CPUs and memory",
                p.workers,
                if p.workers == 1 { "" } else { "s" }
            ));
            Scaling::Vertical
        }
        Strategy::Auto if p.workers >= 2 => {
            reasons.push(format!(
                "strategy Auto: the pod can use {} workers -> vertical (workers per pod), replicas as asked",
                p.workers
            ));
            Scaling::Vertical
        }
        Strategy::Auto => {
            reasons.push(
                "strategy Auto: one process per pod -> horizontal (more pods, not more workers)"
                    .to_owned(),
            );
            Scaling::Horizontal
        }
    };
    reasons.push(format!(
        "decision: {}, {} scaling",
        sizes(p.mode, p.workers, app.replicas),
        scaling.as_str()
    ));
    Decision {
        mode: p.mode,
        workers: p.workers,
        scaling,
        replicas: app.replicas,
        reasons,
    }
}

/// Why the CPU request, not a limit, sizes the workers, when the two
/// differ: the pod is guaranteed only its request.
fn cpu_request_reason(app: &Checked) -> Option<String> {
    let request = app.cpu.request.as_ref()?;
    match &app.cpu.limit {
        None => Some(format!(
            "no CPU limit: workers are sized from the CPU request ({}={}), the CPU the pod is guaranteed (it may burst above it)",
            request.field, request.raw
        )),
        Some(limit) if limit.value != request.value => Some(format!(
            "workers are sized from the CPU request ({}={}), the CPU the pod is guaranteed, not the limit ({}={})",
            request.field, request.raw, limit.field, limit.raw
        )),
        Some(_) => None,
    }
}

/// `cluster mode, 2 workers per pod, 3 replicas`: the sizes a decision
/// gives, as its closing reason and the DecisionChanged event say them.
pub fn sizes(mode: Mode, workers: u32, replicas: i32) -> String {
    format!(
        "{} mode, {workers} worker{} per pod, {replicas} replica{}",
        mode.as_str(),
        if workers == 1 { "" } else { "s" },
        if replicas == 1 { "" } else { "s" },
    )
}

fn sourced<T>(value: T, source: &str) -> Sourced<T> {
    Sourced {
        value,
        source: source.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{Size, Sizes};
    use corefit_plan::overrides::WorkerChoice;

    fn size(value: u64, field: &'static str) -> Size {
        Size {
            value,
            field,
            raw: value.to_string(),
        }
    }

    /// Horizontal's reason names the strategy once, as a source asking for
    /// 1 worker (it read `spec.scaling.strategy=Horizontal=single`).
    #[test]
    fn horizontal_reads_as_one_worker_asked() {
        let app = Checked {
            image: "x".to_owned(),
            strategy: Strategy::Horizontal,
            cpu: Sizes::both(size(8000, "spec.resources.cpu")),
            memory: Sizes::both(size(8 << 30, "spec.resources.memory")),
            memory_per_worker: None,
            workers: None,
            replicas: 3,
            port: 8080,
            admin_port: 9901,
        };
        let d = decide(&app, &ClusterInfo::default());
        assert_eq!(
            (d.mode, d.workers, d.scaling),
            (Mode::Single, 1, Scaling::Horizontal)
        );
        assert!(
            d.reasons
                .iter()
                .any(|r| r == "spec.scaling.strategy=Horizontal asks for 1 worker"),
            "{:?}",
            d.reasons
        );
        assert!(
            !d.reasons.iter().any(|r| r.contains("=Horizontal=")),
            "{:?}",
            d.reasons
        );
    }

    /// Absurd sizes that pass validation (a 1-byte pod, 2^64-1 bytes,
    /// 18 quadrillion CPUs, 4096 workers asked) decide without a panic or
    /// an overflow, within 1 worker and the node's CPUs.
    #[test]
    fn absurd_sizes_decide_within_bounds() {
        let info = ClusterInfo::default();
        let cpus = [None, Some(1), Some(999), Some(2000), Some(u64::MAX)];
        let mems = [None, Some(1), Some(16 << 20), Some(u64::MAX)];
        let per_worker = [None, Some(16 << 20), Some(u64::MAX)];
        let workers = [
            None,
            Some(WorkerChoice::Auto),
            Some(WorkerChoice::Count(4096)),
        ];
        let strategies = [Strategy::Auto, Strategy::Horizontal, Strategy::Vertical];
        let mut n = 0;
        for cpu in cpus {
            for mem in mems {
                for mpw in per_worker {
                    for w in workers {
                        for strategy in strategies {
                            let app = Checked {
                                image: "x".to_owned(),
                                strategy,
                                cpu: Sizes {
                                    request: cpu.map(|c| size(c, "spec.resources.requests.cpu")),
                                    limit: None,
                                },
                                memory: Sizes {
                                    request: None,
                                    limit: mem.map(|m| size(m, "spec.resources.limits.memory")),
                                },
                                memory_per_worker: mpw,
                                workers: w,
                                replicas: 1000,
                                port: 65535,
                                admin_port: 1,
                            };
                            let d = decide(&app, &info);
                            assert!(
                                (1..=info.node_cpus).contains(&d.workers),
                                "{app:?} -> {} workers",
                                d.workers
                            );
                            assert!(d.reasons.last().unwrap().starts_with("decision: "));
                            n += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(n, 5 * 4 * 3 * 3 * 3);
    }

    /// The CPU request sizes the workers, whatever the limit; the reasons
    /// say why when the limit differs or is missing, and nothing extra
    /// when request = limit.
    #[test]
    fn the_cpu_request_decides_and_the_reason_says_so() {
        let app = |request: u64, limit: Option<u64>| Checked {
            image: "x".to_owned(),
            strategy: Strategy::Auto,
            cpu: Sizes {
                request: Some(size(request, "spec.resources.requests.cpu")),
                limit: limit.map(|l| size(l, "spec.resources.limits.cpu")),
            },
            memory: Sizes::default(),
            memory_per_worker: None,
            workers: None,
            replicas: 1,
            port: 8080,
            admin_port: 9901,
        };
        let info = ClusterInfo::default();
        for (request, limit, workers, said) in [
            (2000, None, 2, Some("no CPU limit: workers are sized from the CPU request (spec.resources.requests.cpu=2000)")),
            (2000, Some(8000), 2, Some("not the limit (spec.resources.limits.cpu=8000)")),
            (500, Some(4000), 1, Some("not the limit")),
            (3000, Some(3000), 3, None),
        ] {
            let d = decide(&app(request, limit), &info);
            assert_eq!(d.workers, workers, "{request} {limit:?}: {:?}", d.reasons);
            let extra = d.reasons.iter().find(|r| r.contains("sized from the CPU request"));
            match said {
                Some(s) => assert!(extra.is_some_and(|r| r.contains(s)), "{:?}", d.reasons),
                None => assert_eq!(extra, None),
            }
        }
    }
}
