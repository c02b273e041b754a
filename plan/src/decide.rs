//! The decision matrix: one pure function from facts and overrides to a
//! [`Plan`]. It never reads the system, the environment or a clock.
//!
//! ```text
//! effective CPUs   = min(host, affinity, cpuset, quota/period, platform hint,
//!                        the CPU request when no quota is set: Kubernetes only)
//!                    (a pod: min(node, spec CPU limit, platform hint))
//! memory           = min(host MemTotal, memory.max, memory.high, platform hint)
//!                    (a pod: min(spec memory limit, platform hint))
//! cpu cap          = max(1, floor(effective CPUs))
//! memory cap       = floor(memory / memory per worker)      (512 MiB default)
//! auto workers     = orchestrated, no CPU limit, no request -> 1  (host cores aren't ours)
//!                    otherwise                     -> cpu cap
//! workers          = min(auto or explicit, cpu cap*, memory cap, max workers), >= 1
//!                    (* unless oversubscription is allowed)
//! mode             = cluster when workers >= 2 (or cluster forced), else single
//! ```

use serde::Serialize;

use super::capacity::Capacity;
use super::facts::{Limits, Platform, PlatformKind, PodResources};
use super::overrides::{ModeChoice, Overrides, ScalingChoice, WorkerChoice};
use super::size::human_bytes;
use super::worker_env::{worker_env, WorkerEnv};

/// The default memory budget per worker.
pub const DEFAULT_MEMORY_PER_WORKER: u64 = 512 * 1024 * 1024;

/// How the app runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One process, supervised.
    Single,
    /// N worker processes sharing one port.
    Cluster,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Cluster => "cluster",
        }
    }
}

/// Who adds capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scaling {
    /// The platform adds instances.
    Horizontal,
    /// More workers in this instance.
    Vertical,
}

/// A number and the fact it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bound<T> {
    pub value: T,
    /// "cgroup v1 quota 150000/100000 (/sys/fs/cgroup/cpu/cpu.cfs_quota_us)".
    pub source: String,
}

/// The upper bounds the worker count was held to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caps {
    /// floor(effective CPUs), at least 1.
    pub cpu: u32,
    /// floor(memory / memory per worker), when memory is known.
    pub memory: Option<u32>,
    /// An explicit maximum (`MAX_WORKERS`...).
    pub max_workers: Option<u32>,
    /// The tightest cap that applies to the count, the one a larger count
    /// would hit first (what `corefit scale` stays within); `None` when
    /// none applies.
    pub binding: Option<Binding>,
}

/// One of the [`Caps`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cap {
    Cpu,
    Memory,
    MaxWorkers,
}

/// The cap that binds, and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Binding {
    pub cap: Cap,
    pub max: u32,
}

impl Caps {
    /// The caps, and which binds: the smallest of the CPU cap (unless
    /// oversubscription is allowed), the memory cap and the explicit
    /// maximum; of equal ones the first in that order.
    pub fn new(
        cpu: u32,
        memory: Option<u32>,
        max_workers: Option<u32>,
        oversubscribe: bool,
    ) -> Caps {
        let binding = [
            (!oversubscribe).then_some((Cap::Cpu, cpu)),
            memory.map(|m| (Cap::Memory, m)),
            max_workers.map(|m| (Cap::MaxWorkers, m)),
        ]
        .into_iter()
        .flatten()
        .reduce(|best, c| if c.1 < best.1 { c } else { best })
        .map(|(cap, max)| Binding { cap, max });
        Caps {
            cpu,
            memory,
            max_workers,
            binding,
        }
    }
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub mode: Mode,
    pub workers: u32,
    pub scaling: Scaling,
    pub platform: PlatformKind,
    /// The fraction is kept: 1.5 CPUs is a fact worth reporting.
    pub effective_cpus: Bound<f64>,
    /// True when a CPU limit was set (a quota, a published size, or a
    /// cpuset or affinity mask narrower than the host).
    pub cpu_limited: bool,
    /// The memory the instance may use, when known.
    pub memory: Option<Bound<u64>>,
    /// True when a cgroup or platform limit bounds memory.
    pub memory_limited: bool,
    /// The budget per worker the memory cap used.
    pub memory_per_worker: u64,
    /// memory / workers: each worker's share.
    pub worker_memory_share: Option<u64>,
    pub caps: Caps,
    /// Whether workers may exceed the CPU count.
    pub oversubscribe: bool,
    pub worker_env: WorkerEnv,
    /// Every step of the decision, in words.
    pub reasons: Vec<String>,
    /// Things the user should fix (capped values, ignored settings).
    pub warnings: Vec<String>,
}

/// Decides single vs cluster and the worker count for an instance whose
/// limits the launcher's probes read.
pub fn plan(limits: &Limits, platform: &Platform, overrides: &Overrides) -> Plan {
    decide(Capacity::observed(limits, platform), platform, overrides)
}

/// Decides for a pod from its spec's resources, before it runs: the same
/// matrix, with the node's CPUs in the host's place and the pod's limits
/// as stated sizes (no cgroup involved). `platform` names who runs the pod
/// and why; sizes it publishes narrow the pod's as they would a probed
/// instance's.
pub fn plan_for_pod(pod: &PodResources, platform: &Platform, overrides: &Overrides) -> Plan {
    decide(Capacity::of_pod(pod, platform), platform, overrides)
}

fn decide(capacity: Capacity, platform: &Platform, overrides: &Overrides) -> Plan {
    let Capacity {
        cpus,
        cpu_limited,
        memory,
        memory_limited,
        unused_request,
    } = capacity;
    let mut reasons = Vec::new();
    let mut warnings = Vec::new();

    reasons.push(format!(
        "{} detected ({})",
        capitalized(platform.kind.display_name()),
        platform.evidence
    ));

    reasons.push(format!("{} from {}", cpus_phrase(cpus.value), cpus.source));
    reasons.extend(unused_request);
    let cpu_cap = whole_cpus(cpus.value);

    match &memory {
        Some(m) => reasons.push(format!("{} of memory from {}", human_bytes(m.value), m.source)),
        None => warnings.push("memory size unknown (no cgroup limit and no readable MemTotal); memory does not cap workers".to_owned()),
    }
    let memory_per_worker = overrides
        .memory_per_worker
        .as_ref()
        .map_or(DEFAULT_MEMORY_PER_WORKER, |m| m.value);
    let memory_cap = memory
        .as_ref()
        .map(|m| (m.value / memory_per_worker).min(u32::MAX as u64) as u32);

    let oversubscribe = overrides
        .allow_oversubscribe
        .as_ref()
        .is_some_and(|o| o.value);
    let explicit_mode = overrides
        .mode
        .as_ref()
        .filter(|m| m.value != ModeChoice::Auto);
    let explicit_count = overrides.workers.as_ref().and_then(|w| match w.value {
        WorkerChoice::Count(n) => Some((n, w.source.as_str())),
        WorkerChoice::Auto => None,
    });

    let mut workers;
    if let Some(m) = explicit_mode.filter(|m| m.value == ModeChoice::Single) {
        workers = 1;
        reasons.push(format!("{}={} -> single process", m.source, "single"));
        if let Some((n, src)) = explicit_count.filter(|(n, _)| *n > 1) {
            warnings.push(format!(
                "{src}={n} is ignored: {} asks for a single process",
                m.source
            ));
        }
    } else {
        if let Some((n, src)) = explicit_count {
            workers = n;
            reasons.push(format!("{src} asks for {n} worker{}", plural(n)));
            if n > cpu_cap {
                if oversubscribe {
                    reasons.push(format!(
                        "{n} workers exceed {} but oversubscription is allowed",
                        cpus_phrase(cpus.value)
                    ));
                } else {
                    workers = cpu_cap;
                    warnings.push(format!(
                        "{src}={n} is above the {} available; capped to {cpu_cap} (allow with --allow-oversubscribe)",
                        cpus_phrase(cpus.value)
                    ));
                    reasons.push(format!("capped to {cpu_cap} by the CPU count"));
                }
            }
        } else if platform.kind.orchestrated() && !cpu_limited {
            workers = 1;
            reasons.push(format!(
                "no CPU limit is set, and the host's {} are not this container's to use on {} -> 1 process (the platform scales out; set a CPU request or limit, or COREFIT_WORKERS, to run more)",
                cpus_phrase(cpus.value),
                platform.kind.display_name()
            ));
        } else {
            workers = cpu_cap;
            if cpu_cap >= 2 {
                let why = if platform.kind.orchestrated() {
                    "one single-threaded process cannot use them"
                } else {
                    "workers = CPU count"
                };
                reasons.push(format!("{cpu_cap} whole CPUs -> {cpu_cap} workers ({why})"));
            } else {
                reasons.push("fewer than 2 whole CPUs -> single process".to_owned());
            }
        }
        if let (Some(mcap), Some(m)) = (memory_cap, &memory) {
            if workers > mcap.max(1) {
                let capped = mcap.max(1);
                let msg = format!(
                    "{} of memory at {} per worker allows {mcap} worker{} -> {}",
                    human_bytes(m.value),
                    human_bytes(memory_per_worker),
                    plural(mcap),
                    if capped < 2 {
                        "single process".to_owned()
                    } else {
                        format!("{capped} workers")
                    }
                );
                if explicit_count.is_some() {
                    warnings.push(format!("worker count capped by memory: {msg}"));
                }
                reasons.push(msg);
                workers = capped;
            }
        }
    }

    let max_workers = overrides.max_workers.as_ref().map(|m| m.value);
    if let Some(mw) = &overrides.max_workers {
        if workers > mw.value {
            reasons.push(format!(
                "{}={} caps the count at {}",
                mw.source, mw.value, mw.value
            ));
            workers = mw.value;
        }
    }
    let workers = workers.max(1);

    let mode = match explicit_mode.map(|m| (m.value, m.source.as_str())) {
        Some((ModeChoice::Cluster, src)) => {
            if workers < 2 {
                reasons.push(format!("{src}=cluster -> cluster mode with 1 worker"));
            }
            Mode::Cluster
        }
        Some((ModeChoice::Single, _)) => Mode::Single,
        _ if workers >= 2 => Mode::Cluster,
        _ => Mode::Single,
    };
    for s in &overrides.shadowed {
        reasons.push(format!("ignored: {s}"));
    }

    let asked = overrides
        .scaling
        .as_ref()
        .filter(|s| s.value != ScalingChoice::Auto);
    let scaling = match asked.map(|s| s.value) {
        Some(ScalingChoice::Vertical) => Scaling::Vertical,
        Some(_) => Scaling::Horizontal,
        None if platform.kind.orchestrated() => Scaling::Horizontal,
        None => Scaling::Vertical,
    };
    if let Some(s) = asked {
        reasons.push(format!(
            "{}={} -> {} scaling",
            s.source,
            s.value.as_str(),
            s.value.as_str()
        ));
    }
    let worker_memory_share = memory.as_ref().map(|m| m.value / workers as u64);
    let worker_env = worker_env(
        mode,
        workers,
        cpus.value,
        memory_limited.then_some(()).and(worker_memory_share),
        overrides,
    );
    reasons.push(format!(
        "decision: {} mode, {workers} worker{}, {} scaling",
        mode.as_str(),
        plural(workers),
        match scaling {
            Scaling::Horizontal => "horizontal (the platform adds instances)",
            Scaling::Vertical => "vertical (workers per host)",
        }
    ));

    Plan {
        mode,
        workers,
        scaling,
        platform: platform.kind,
        effective_cpus: cpus,
        cpu_limited,
        memory,
        memory_limited,
        memory_per_worker,
        worker_memory_share,
        caps: Caps::new(cpu_cap, memory_cap, max_workers, oversubscribe),
        oversubscribe,
        worker_env,
        reasons,
        warnings,
    }
}

/// floor(cpus), at least 1. A hair of tolerance keeps 1.9999999 quotas
/// from losing a CPU to float rounding.
pub fn whole_cpus(cpus: f64) -> u32 {
    if !cpus.is_finite() || cpus < 1.0 {
        return 1;
    }
    ((cpus + 1e-9).floor() as u64).clamp(1, u32::MAX as u64) as u32
}

/// "1.5 CPUs", "2 CPUs", "1 CPU".
pub fn cpus_phrase(cpus: f64) -> String {
    let rounded = (cpus * 100.0).round() / 100.0;
    if (rounded - 1.0).abs() < f64::EPSILON {
        "1 CPU".to_owned()
    } else {
        format!("{rounded} CPUs")
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_cap_that_applies_binds() {
        let binds = |cap, max| Some(Binding { cap, max });
        // (cpu, memory, max_workers, oversubscribe) -> binding
        let cases = [
            ((4, None, None, false), binds(Cap::Cpu, 4)),
            ((4, None, None, true), None),
            ((8, Some(3), None, false), binds(Cap::Memory, 3)),
            ((8, Some(3), Some(2), false), binds(Cap::MaxWorkers, 2)),
            ((2, Some(16), None, true), binds(Cap::Memory, 16)),
            // Equal caps: the first in the plan's order names it.
            ((3, Some(3), Some(3), false), binds(Cap::Cpu, 3)),
            ((3, Some(2), Some(2), false), binds(Cap::Memory, 2)),
        ];
        for ((cpu, memory, max_workers, over), want) in cases {
            let caps = Caps::new(cpu, memory, max_workers, over);
            assert_eq!(caps.binding, want, "{caps:?} oversubscribe {over}");
        }
    }
}
