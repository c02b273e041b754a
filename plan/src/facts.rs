//! Plain data the plan reads: what the launcher's probes found inside a
//! container ([`Limits`], [`Platform`]), or what a pod's spec states before
//! the pod exists ([`PodResources`]). Nothing here touches the system:
//! every value was read by a probe, taken from a spec, or written by a test.

use serde::Serialize;

/// Which cgroup hierarchy a limit was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    V1,
    V2,
}

impl std::fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CgroupVersion::V1 => "cgroup v1",
            CgroupVersion::V2 => "cgroup v2",
        })
    }
}

/// Where a limit came from: the hierarchy and the file, as a path on the
/// host (or in the fixture tree).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitSource {
    pub cgroup: CgroupVersion,
    pub file: String,
}

/// A CFS bandwidth limit: `quota_us` of CPU time every `period_us`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CpuQuota {
    pub quota_us: u64,
    pub period_us: u64,
    pub source: LimitSource,
}

impl CpuQuota {
    /// The fraction of CPUs this quota grants (150000/100000 = 1.5).
    pub fn cpus(&self) -> f64 {
        self.quota_us as f64 / self.period_us as f64
    }
}

/// A cpuset: the CPUs the cgroup may run on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CpusetLimit {
    pub cpus: u32,
    /// The list as the kernel wrote it, e.g. `0-1,4`.
    pub list: String,
    pub source: LimitSource,
}

/// Everything known about CPUs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuFacts {
    /// Online CPUs of the host (what PM2's `instances: max` counts).
    pub host_cpus: u32,
    /// CPUs in this process's `sched_getaffinity` mask, when known.
    pub affinity_cpus: Option<u32>,
    /// The smallest CFS quota along the cgroup path and its ancestors.
    pub quota: Option<CpuQuota>,
    /// The narrowest cpuset along the cgroup path and its ancestors.
    pub cpuset: Option<CpusetLimit>,
}

/// A memory limit in bytes and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemoryLimit {
    pub bytes: u64,
    pub source: LimitSource,
}

/// Everything known about memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemoryFacts {
    /// `MemTotal` of the host, when readable.
    pub host_bytes: Option<u64>,
    /// The smallest hard limit (`memory.max`, `memory.limit_in_bytes`).
    pub limit: Option<MemoryLimit>,
    /// The smallest throttling limit (`memory.high`, cgroup v2 only).
    pub high: Option<MemoryLimit>,
}

/// Which cgroup layout the machine has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupLayout {
    /// Only cgroup v1 controllers.
    V1,
    /// Only the unified cgroup2 hierarchy.
    V2,
    /// v1 controllers beside a cgroup2 mount (systemd's "hybrid" layout).
    Hybrid,
    /// No cgroup filesystem found.
    None,
}

/// The resource facts the plan reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Limits {
    pub cgroup: CgroupLayout,
    pub cpu: CpuFacts,
    pub memory: MemoryFacts,
}

/// A pod's resources as its spec states them: what the operator plans
/// with, before any pod (or cgroup) exists.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodResources {
    /// The CPUs of the largest node the pod may land on: a pod never gets
    /// more, even when its limit says so. It plays the host's part.
    pub node_cpus: u32,
    /// The CPUs the pod is guaranteed (its CPU request; its limit when
    /// only a limit is stated, as Kubernetes then requests the limit), 1.5
    /// for `1500m`, and the field it came from.
    pub cpus: Option<Hint<f64>>,
    /// The pod's memory limit in bytes and the field it came from.
    pub memory: Option<Hint<u64>>,
}

/// The platform the process runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlatformKind {
    Kubernetes,
    FlyIo,
    Ecs,
    CloudRun,
    Knative,
    Heroku,
    Render,
    Railway,
    AzureContainerApps,
    Nomad,
    Swarm,
    /// A container with no orchestrator signal (`docker run` on a host).
    Container,
    /// A systemd service on a host.
    Systemd,
    /// A virtual machine (the CPU reports a hypervisor).
    Vps,
    BareMetal,
}

impl PlatformKind {
    /// Every kind, in the order `COREFIT_PLATFORM` documents them.
    pub const ALL: [PlatformKind; 15] = [
        PlatformKind::Kubernetes,
        PlatformKind::FlyIo,
        PlatformKind::Ecs,
        PlatformKind::CloudRun,
        PlatformKind::Knative,
        PlatformKind::Heroku,
        PlatformKind::Render,
        PlatformKind::Railway,
        PlatformKind::AzureContainerApps,
        PlatformKind::Nomad,
        PlatformKind::Swarm,
        PlatformKind::Container,
        PlatformKind::Systemd,
        PlatformKind::Vps,
        PlatformKind::BareMetal,
    ];

    /// The identifier used in `COREFIT_PLATFORM`, `--platform` and JSON.
    pub fn id(self) -> &'static str {
        match self {
            PlatformKind::Kubernetes => "kubernetes",
            PlatformKind::FlyIo => "fly-io",
            PlatformKind::Ecs => "ecs",
            PlatformKind::CloudRun => "cloud-run",
            PlatformKind::Knative => "knative",
            PlatformKind::Heroku => "heroku",
            PlatformKind::Render => "render",
            PlatformKind::Railway => "railway",
            PlatformKind::AzureContainerApps => "azure-container-apps",
            PlatformKind::Nomad => "nomad",
            PlatformKind::Swarm => "swarm",
            PlatformKind::Container => "container",
            PlatformKind::Systemd => "systemd",
            PlatformKind::Vps => "vps",
            PlatformKind::BareMetal => "bare-metal",
        }
    }

    /// A name for people.
    pub fn display_name(self) -> &'static str {
        match self {
            PlatformKind::Kubernetes => "Kubernetes",
            PlatformKind::FlyIo => "Fly.io",
            PlatformKind::Ecs => "AWS ECS",
            PlatformKind::CloudRun => "Cloud Run",
            PlatformKind::Knative => "Knative",
            PlatformKind::Heroku => "Heroku",
            PlatformKind::Render => "Render",
            PlatformKind::Railway => "Railway",
            PlatformKind::AzureContainerApps => "Azure Container Apps",
            PlatformKind::Nomad => "Nomad",
            PlatformKind::Swarm => "Docker Swarm",
            PlatformKind::Container => "a plain container",
            PlatformKind::Systemd => "systemd",
            PlatformKind::Vps => "a VPS",
            PlatformKind::BareMetal => "bare metal",
        }
    }

    /// Parses an identifier (case-insensitive; `_` and `-` are the same).
    pub fn from_id(s: &str) -> Option<PlatformKind> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        let wanted = match wanted.as_str() {
            "k8s" => "kubernetes",
            "fly" | "flyio" => "fly-io",
            "fargate" => "ecs",
            "cloudrun" => "cloud-run",
            "aca" => "azure-container-apps",
            "docker" => "container",
            "baremetal" | "metal" => "bare-metal",
            other => other,
        }
        .to_owned();
        PlatformKind::ALL.into_iter().find(|k| k.id() == wanted)
    }

    /// Platforms whose containers a kubelet runs: it writes a pod's CPU
    /// request into the container's cgroup (`cpu.shares`, `cpu.weight`), so
    /// there (and only there) those figures are a request.
    pub fn kubelet_managed(self) -> bool {
        matches!(
            self,
            PlatformKind::Kubernetes | PlatformKind::Knative | PlatformKind::AzureContainerApps
        )
    }

    /// Orchestrated platforms add instances themselves: the baseline there is
    /// one process per instance (horizontal scaling).
    pub fn orchestrated(self) -> bool {
        !matches!(
            self,
            PlatformKind::Container
                | PlatformKind::Systemd
                | PlatformKind::Vps
                | PlatformKind::BareMetal
        )
    }
}

/// A size stated outside the cgroup: published by a platform in its
/// environment (`RENDER_CPU_COUNT`...) or written in a pod's spec.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hint<T> {
    pub value: T,
    /// The variable (or spec field) it came from.
    pub variable: String,
}

/// The detected platform, why it was detected, and the sizes it publishes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Platform {
    pub kind: PlatformKind,
    /// Why: "KUBERNETES_SERVICE_HOST is set", "/.dockerenv exists"...
    pub evidence: String,
    pub cpu_hint: Option<Hint<f64>>,
    pub memory_hint: Option<Hint<u64>>,
    /// The CPU the orchestrator guarantees the instance (a Kubernetes CPU
    /// request): what the CPUs come from when no quota bounds them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_request: Option<CpuRequest>,
}

/// A CPU request and where it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CpuRequest {
    /// The request in millicores (1500 for `1.5`).
    pub millis: u64,
    pub source: RequestSource,
}

impl CpuRequest {
    /// The request in CPUs.
    pub fn cpus(&self) -> f64 {
        self.millis as f64 / 1000.0
    }
}

/// Where a CPU request was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RequestSource {
    /// A variable the operator wires in by the downward API
    /// (`COREFIT_CPU_REQUEST`, millicores).
    Variable { name: String, value: String },
    /// The figure the kubelet wrote into corefit's own cgroup from the
    /// request: `cpu.shares` (v1) or `cpu.weight` (v2).
    Cgroup {
        cgroup: CgroupVersion,
        file: String,
        value: u64,
    },
}

impl std::fmt::Display for RequestSource {
    /// "COREFIT_CPU_REQUEST=1500", "cpu.shares 1536, cgroup v1, /sys/...".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestSource::Variable { name, value } => write!(f, "{name}={value}"),
            RequestSource::Cgroup {
                cgroup,
                file,
                value,
            } => {
                let name = match cgroup {
                    CgroupVersion::V1 => "cpu.shares",
                    CgroupVersion::V2 => "cpu.weight",
                };
                write!(f, "{name} {value}, {cgroup}, {file}")
            }
        }
    }
}

impl Platform {
    /// A platform with no published sizes.
    pub fn new(kind: PlatformKind, evidence: impl Into<String>) -> Platform {
        Platform {
            kind,
            evidence: evidence.into(),
            cpu_hint: None,
            memory_hint: None,
            cpu_request: None,
        }
    }
}
