//! The CPUs and memory one instance may use, each with the fact it came
//! from. Every known size is a candidate and the smallest usable one wins;
//! the host (or the node, for a pod) is the starting point.
//!
//! ```text
//! in a container   host CPUs   > affinity, cpuset, quota/period, platform hint,
//!                                the CPU request (on Kubernetes, only when no quota)
//!                  MemTotal    > memory.max, memory.high, platform hint
//! for a pod spec   node CPUs   > spec CPU limit, platform hint
//!                  (unknown)   > spec memory limit, platform hint
//! ```

use super::decide::Bound;
use super::facts::{Hint, Limits, Platform, PodResources};

/// What the matrix sizes workers from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Capacity {
    pub cpus: Bound<f64>,
    /// True when a CPU limit was set (a quota, a published or stated size,
    /// or a cpuset or affinity mask narrower than the host).
    pub cpu_limited: bool,
    pub memory: Option<Bound<u64>>,
    /// True when a cgroup, platform or spec limit bounds memory.
    pub memory_limited: bool,
    /// A CPU request that a quota made moot, said in the reasons.
    pub unused_request: Option<String>,
}

impl Capacity {
    /// From what the launcher's probes found inside a container.
    pub fn observed(limits: &Limits, platform: &Platform) -> Capacity {
        let cpu = &limits.cpu;
        let mem = &limits.memory;
        // A request is what the CPUs come from only when nothing caps
        // them: with a quota, the quota wins (the pod may burst to it).
        let request = platform.cpu_request.as_ref();
        let (request, unused_request) = match (request, &cpu.quota) {
            (Some(r), Some(q)) => (
                None,
                Some(format!(
                    "the CPU request ({}m, {}) is not what sizes workers: the quota ({}) bounds the CPUs",
                    r.millis, r.source, q.source.file
                )),
            ),
            (r, _) => (r, None),
        };
        let mut capacity = Capacity::narrowed(
            platform,
            cpu.host_cpus,
            [
                // The value is said beside the source: "1 CPU (the CPU affinity mask)".
                Candidate::found(cpu.affinity_cpus.map(|a| Bound {
                    value: a as f64,
                    source: "the CPU affinity mask".to_owned(),
                })),
                Candidate::found(cpu.cpuset.as_ref().map(|s| Bound {
                    value: s.cpus as f64,
                    source: format!("{} cpuset {} ({})", s.source.cgroup, s.list, s.source.file),
                })),
                Candidate::set(cpu.quota.as_ref().map(|q| Bound {
                    value: q.cpus(),
                    source: format!(
                        "{} quota {}/{} ({})",
                        q.source.cgroup, q.quota_us, q.period_us, q.source.file
                    ),
                })),
                Candidate::set(request.map(|r| Bound {
                    value: r.cpus(),
                    source: format!("the CPU request ({})", r.source),
                })),
            ],
            cpu.quota.is_some() || request.is_some(),
            mem.host_bytes.map(|b| Bound {
                value: b,
                source: "the host's MemTotal".to_owned(),
            }),
            [
                mem.limit.as_ref().map(|l| Bound {
                    value: l.bytes,
                    source: format!("{} limit ({})", l.source.cgroup, l.source.file),
                }),
                mem.high.as_ref().map(|h| Bound {
                    value: h.bytes,
                    source: format!("{} memory.high ({})", h.source.cgroup, h.source.file),
                }),
            ],
        );
        capacity.unused_request = unused_request;
        capacity
    }

    /// From a pod's spec: the node's CPUs narrowed by the pod's limits (and
    /// by any size the platform publishes). A stated CPU limit is a limit
    /// even when it exceeds the node, as a quota is.
    pub fn of_pod(pod: &PodResources, platform: &Platform) -> Capacity {
        Capacity::narrowed(
            platform,
            pod.node_cpus,
            [Candidate::set(pod.cpus.as_ref().map(cpu_hint))],
            pod.cpus.is_some(),
            None,
            [pod.memory.as_ref().map(memory_hint)],
        )
    }

    /// The host's CPUs and memory narrowed by the candidates and then by
    /// the sizes the platform publishes. `cpu_set` says a CPU limit was set
    /// (a quota, a stated size) whether or not it narrowed anything.
    fn narrowed<const C: usize, const M: usize>(
        platform: &Platform,
        host_cpus: u32,
        cpu: [Candidate; C],
        cpu_set: bool,
        host_memory: Option<Bound<u64>>,
        memory: [Option<Bound<u64>>; M],
    ) -> Capacity {
        let platform_cpus = Candidate::set(platform.cpu_hint.as_ref().map(cpu_hint));
        let (cpus, narrowed) = narrowest_cpus(host_cpus, cpu.into_iter().chain([platform_cpus]));
        // A quota or a published size is a limit someone set, even when it
        // is above the host's size: more CPUs must never mean fewer workers.
        let cpu_limited = narrowed || cpu_set || platform.cpu_hint.is_some();
        let platform_memory = platform.memory_hint.as_ref().map(memory_hint);
        let (memory, memory_limited) =
            narrowest_memory(host_memory, memory.into_iter().chain([platform_memory]));
        Capacity {
            cpus,
            cpu_limited,
            memory,
            memory_limited,
            unused_request: None,
        }
    }
}

/// A CPU count the host's may be narrowed to.
#[derive(Debug, Clone, PartialEq)]
struct Candidate {
    bound: Option<Bound<f64>>,
    /// A limit someone set (a quota, a stated or published size), not a
    /// fact of the machine (an affinity mask, a cpuset): equal to the
    /// host's count, it is still what the CPUs come from.
    set: bool,
}

impl Candidate {
    fn found(bound: Option<Bound<f64>>) -> Candidate {
        Candidate { bound, set: false }
    }

    fn set(bound: Option<Bound<f64>>) -> Candidate {
        Candidate { bound, set: true }
    }
}

/// The host's CPUs (at least 1), narrowed by every finite, positive,
/// smaller candidate; true when one narrowed it. A limit someone set
/// equal to the host's count takes the host's place as the source.
fn narrowest_cpus(
    host_cpus: u32,
    candidates: impl IntoIterator<Item = Candidate>,
) -> (Bound<f64>, bool) {
    let host = host_cpus.max(1);
    let mut best = Bound {
        value: host as f64,
        source: format!("the host's {host} online CPUs"),
    };
    let mut narrowed = false;
    let mut named = false;
    for Candidate { bound, set } in candidates {
        let Some(c) = bound.filter(|c| c.value.is_finite() && c.value > 0.0) else {
            continue;
        };
        if c.value < best.value {
            best = c;
            narrowed = true;
            named = true;
        } else if set && !named && c.value == best.value {
            best = c;
            named = true;
        }
    }
    (best, narrowed)
}

/// The host's memory (when known), narrowed by every positive, smaller
/// candidate; true when one narrowed it.
fn narrowest_memory(
    host: Option<Bound<u64>>,
    candidates: impl IntoIterator<Item = Option<Bound<u64>>>,
) -> (Option<Bound<u64>>, bool) {
    let mut best = host;
    let mut narrowed = false;
    for c in candidates.into_iter().flatten() {
        if c.value > 0 && best.as_ref().is_none_or(|b| c.value < b.value) {
            best = Some(c);
            narrowed = true;
        }
    }
    (best, narrowed)
}

fn cpu_hint(h: &Hint<f64>) -> Bound<f64> {
    Bound {
        value: h.value,
        source: format!("{}={}", h.variable, h.value),
    }
}

fn memory_hint(h: &Hint<u64>) -> Bound<u64> {
    Bound {
        value: h.value,
        source: format!("{}={} MiB", h.variable, h.value / (1024 * 1024)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{CgroupLayout, CpuFacts, MemoryFacts, PlatformKind};
    use crate::overrides::{ModeChoice, Overrides, Sourced, WorkerChoice};
    use crate::{plan, plan_for_pod};

    fn sourced<T>(value: T, source: &str) -> Sourced<T> {
        Sourced {
            value,
            source: source.to_owned(),
        }
    }

    /// A pod planned from its resources decides exactly as the same sizes
    /// do when published by a platform on a host with the node's CPUs and
    /// no other fact (what the operator did before `plan_for_pod`): same
    /// counts, caps, reasons and warnings, over a grid of odd sizes.
    #[test]
    fn a_pod_plans_as_published_sizes_on_its_node() {
        let cpus = [
            None,
            Some(0.0),
            Some(0.5),
            Some(1.5),
            Some(2.0),
            Some(7.9),
            Some(1e12),
        ];
        let mems = [
            None,
            Some(0),
            Some(1),
            Some(700 << 20),
            Some(4 << 30),
            Some(u64::MAX),
        ];
        let overrides = [
            Overrides::default(),
            Overrides {
                mode: Some(sourced(ModeChoice::Single, "spec.a")),
                ..Overrides::default()
            },
            Overrides {
                workers: Some(sourced(WorkerChoice::Count(6), "spec.b")),
                memory_per_worker: Some(sourced(16 << 20, "spec.c")),
                ..Overrides::default()
            },
            Overrides {
                workers: Some(sourced(WorkerChoice::Auto, "spec.d")),
                ..Overrides::default()
            },
        ];
        let mut n = 0;
        for node_cpus in [0, 1, 4, 64] {
            for cpu in cpus {
                for mem in mems {
                    for o in &overrides {
                        let pod = PodResources {
                            node_cpus,
                            cpus: cpu.map(|value| Hint {
                                value,
                                variable: "spec.resources.cpu".to_owned(),
                            }),
                            memory: mem.map(|value| Hint {
                                value,
                                variable: "spec.resources.memory".to_owned(),
                            }),
                        };
                        let runs_as = Platform::new(PlatformKind::Kubernetes, "a pod");
                        let host = Limits {
                            cgroup: CgroupLayout::None,
                            cpu: CpuFacts {
                                host_cpus: node_cpus.max(1),
                                affinity_cpus: None,
                                quota: None,
                                cpuset: None,
                            },
                            memory: MemoryFacts {
                                host_bytes: None,
                                limit: None,
                                high: None,
                            },
                        };
                        let mut publishing = runs_as.clone();
                        publishing.cpu_hint = pod.cpus.clone();
                        publishing.memory_hint = pod.memory.clone();
                        assert_eq!(
                            plan_for_pod(&pod, &runs_as, o),
                            plan(&host, &publishing, o),
                            "{pod:?} {o:?}"
                        );
                        n += 1;
                    }
                }
            }
        }
        assert_eq!(n, 4 * 7 * 6 * 4);
    }

    /// A platform's published sizes still narrow a pod's.
    #[test]
    fn a_platform_hint_narrows_a_pod() {
        let pod = PodResources {
            node_cpus: 8,
            cpus: Some(Hint {
                value: 4.0,
                variable: "spec.resources.cpu".to_owned(),
            }),
            memory: None,
        };
        let mut platform = Platform::new(PlatformKind::Nomad, "test");
        platform.cpu_hint = Some(Hint {
            value: 2.0,
            variable: "NOMAD_CPU_CORES".to_owned(),
        });
        let c = Capacity::of_pod(&pod, &platform);
        assert_eq!(c.cpus.value, 2.0);
        assert_eq!(c.cpus.source, "NOMAD_CPU_CORES=2");
        assert!(c.cpu_limited);
        assert_eq!(c.memory, None);
        assert!(!c.memory_limited);
    }

    /// Limits for `host` CPUs with an affinity mask, a cpuset and a quota.
    fn limits(host: u32, affinity: Option<u32>, cpuset: Option<u32>, quota: Option<f64>) -> Limits {
        use crate::facts::{CgroupVersion, CpuQuota, CpusetLimit, LimitSource};
        let src = |file: &str| LimitSource {
            cgroup: CgroupVersion::V1,
            file: file.to_owned(),
        };
        Limits {
            cgroup: CgroupLayout::V1,
            cpu: CpuFacts {
                host_cpus: host,
                affinity_cpus: affinity,
                quota: quota.map(|q| CpuQuota {
                    quota_us: (q * 100_000.0) as u64,
                    period_us: 100_000,
                    source: src("/q"),
                }),
                cpuset: cpuset.map(|n| CpusetLimit {
                    cpus: n,
                    list: format!("0-{}", n - 1),
                    source: src("/s"),
                }),
            },
            memory: MemoryFacts {
                host_bytes: Some(8 << 30),
                limit: None,
                high: None,
            },
        }
    }

    fn cpus_source(l: &Limits) -> String {
        Capacity::observed(l, &Platform::new(PlatformKind::Vps, "test"))
            .cpus
            .source
    }

    /// A quota equal to the host's count is what the CPUs come from (the
    /// reason names it, not the host); an affinity mask or cpuset equal to
    /// the host's count is not a limit and leaves the host named.
    #[test]
    fn a_quota_equal_to_the_host_is_named_as_the_source() {
        let src = cpus_source(&limits(2, Some(2), Some(2), Some(2.0)));
        assert_eq!(src, "cgroup v1 quota 200000/100000 (/q)");
        let src = cpus_source(&limits(2, Some(2), Some(2), None));
        assert_eq!(src, "the host's 2 online CPUs");
        // A smaller cpuset still wins over a quota of the host's size.
        let src = cpus_source(&limits(4, None, Some(2), Some(4.0)));
        assert!(src.starts_with("cgroup v1 cpuset 0-1"), "{src}");
        // And the reason says so.
        let p = plan(
            &limits(2, Some(2), Some(2), Some(2.0)),
            &Platform::new(PlatformKind::Vps, "test"),
            &Overrides::default(),
        );
        assert!(
            p.reasons
                .iter()
                .any(|r| r.starts_with("2 CPUs from cgroup v1 quota 200000/100000")),
            "{:?}",
            p.reasons
        );
    }

    /// The affinity mask's source does not repeat the count the sentence
    /// already says: "1 CPU (the CPU affinity mask)".
    #[test]
    fn the_affinity_mask_is_named_without_its_count() {
        let p = plan(
            &limits(2, Some(1), None, None),
            &Platform::new(PlatformKind::Vps, "test"),
            &Overrides::default(),
        );
        assert_eq!(p.effective_cpus.source, "the CPU affinity mask");
        assert!(
            p.reasons
                .iter()
                .any(|r| r == "1 CPU from the CPU affinity mask"),
            "{:?}",
            p.reasons
        );
    }

    fn request(millis: u64) -> crate::facts::CpuRequest {
        crate::facts::CpuRequest {
            millis,
            source: crate::facts::RequestSource::Cgroup {
                cgroup: crate::facts::CgroupVersion::V1,
                file: "/sys/fs/cgroup/cpu/cpu.shares".to_owned(),
                value: crate::request::shares_of_millis(millis),
            },
        }
    }

    fn on_kubernetes(req: Option<u64>) -> Platform {
        let mut p = Platform::new(PlatformKind::Kubernetes, "KUBERNETES_SERVICE_HOST is set");
        p.cpu_request = req.map(request);
        p
    }

    /// With no quota, a request sizes the workers and the reason names it;
    /// without one an orchestrated instance runs one process, as before.
    #[test]
    fn a_request_without_a_quota_sizes_the_workers() {
        let o = Overrides::default();
        let host = limits(8, None, None, None);
        let p = plan(&host, &on_kubernetes(Some(1500)), &o);
        assert_eq!((p.workers, p.cpu_limited), (1, true));
        assert!(
            p.reasons.iter().any(|r| r
                == "1.5 CPUs from the CPU request (cpu.shares 1536, cgroup v1, /sys/fs/cgroup/cpu/cpu.shares)"),
            "{:?}",
            p.reasons
        );
        let p = plan(&host, &on_kubernetes(Some(2000)), &o);
        assert_eq!(p.workers, 2);
        assert_eq!(p.effective_cpus.value, 2.0);
        let p = plan(&host, &on_kubernetes(Some(500)), &o);
        assert_eq!(p.workers, 1);
        let p = plan(&host, &on_kubernetes(None), &o);
        assert_eq!((p.workers, p.cpu_limited), (1, false));
        assert_eq!(p.effective_cpus.value, 8.0);
        // A cpuset narrower than the request still wins.
        let p = plan(
            &limits(8, None, Some(2), None),
            &on_kubernetes(Some(4000)),
            &o,
        );
        assert_eq!(p.workers, 2);
        assert!(
            p.effective_cpus.source.contains("cpuset"),
            "{:?}",
            p.effective_cpus
        );
    }

    /// A quota wins over a request, larger or smaller, and the reasons say
    /// the request was not used.
    #[test]
    fn a_quota_wins_over_a_request() {
        let o = Overrides::default();
        for (req, quota, want) in [(2000, 4.0, 4), (4000, 2.0, 2), (1000, 3.0, 3)] {
            let p = plan(
                &limits(8, None, None, Some(quota)),
                &on_kubernetes(Some(req)),
                &o,
            );
            assert_eq!(p.workers, want, "request {req}m, quota {quota}");
            assert!(
                p.effective_cpus.source.contains("quota"),
                "{:?}",
                p.effective_cpus
            );
            assert!(
                p.reasons.iter().any(|r| r
                    .starts_with(&format!("the CPU request ({req}m, cpu.shares"))
                    && r.contains("is not what sizes workers")),
                "{:?}",
                p.reasons
            );
        }
    }
}
