//! Checks a `ClusterApp` spec beyond what the schema can say, and turns it
//! into plain numbers. Every error names the field(s) at fault; the
//! reconciler reports it as a `Degraded` condition and an event.

use corefit::plan::overrides::{WorkerChoice, MAX_REQUESTABLE_WORKERS, MIN_MEMORY_PER_WORKER};
use thiserror::Error;

use crate::quantity::{self, QuantityError};
use crate::types::{ClusterAppSpec, LauncherMode, Strategy, Workers};

/// The launcher's admin port when the spec names none.
pub const DEFAULT_ADMIN_PORT: i32 = 9901;

/// Environment the operator sets itself.
pub const RESERVED_ENV: [&str; 4] = [
    "COREFIT_MODE",
    "COREFIT_WORKERS",
    "COREFIT_ADMIN_PORT",
    "COREFIT_PLATFORM",
];

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpecError {
    #[error("spec.image is missing or blank: a ClusterApp needs a container image")]
    MissingImage,
    #[error(transparent)]
    Quantity(#[from] QuantityError),
    #[error("spec.scaling.memoryPerWorker={per_worker} is above the pod's memory (spec.resources.memory={memory}): not even one worker fits")]
    MemoryPerWorkerAboveMemory { per_worker: String, memory: String },
    #[error("spec.scaling.memoryPerWorker={0} is below the 16Mi minimum per worker")]
    MemoryPerWorkerTooSmall(String),
    #[error("spec.scaling.strategy=Vertical needs spec.resources.cpu: the workers per pod come from the pod's CPUs")]
    VerticalWithoutCpu,
    #[error("spec.scaling.workers={0} conflicts with spec.scaling.strategy=Horizontal, which runs 1 worker per pod")]
    HorizontalWithWorkers(u32),
    #[error("spec.scaling.workers={0:?} is not 'auto' or a whole number from 1 to 4096")]
    BadWorkers(String),
    #[error("spec.scaling.autoscaling.minReplicas={min} is above spec.scaling.autoscaling.maxReplicas={max}")]
    AutoscalingBounds { min: i32, max: i32 },
    #[error("spec.launcher.adminPort={0} is the same as spec.port: the launcher's admin port needs its own")]
    AdminPortClash(i32),
    #[error("spec.env sets {0}, which the operator sets from its decision")]
    ReservedEnv(String),
    #[error("spec.env sets {0} more than once")]
    DuplicateEnv(String),
    #[error("spec.env name {0:?} is not a valid environment variable name")]
    BadEnvName(String),
    #[error("metadata.name={0:?} cannot name a Service: it must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter, at most 63 characters)")]
    BadName(String),
    #[error(
        "spec.launcher.mode=InitContainer needs spec.launcher.image (the image holding /corefit)"
    )]
    InitContainerWithoutImage,
    #[error("spec.launcher.mode=InitContainer needs spec.command: the injected launcher must be told what to run")]
    InitContainerWithoutCommand,
}

impl SpecError {
    /// A CamelCase name for metric labels and event reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            SpecError::MissingImage => "MissingImage",
            SpecError::Quantity(_) => "BadQuantity",
            SpecError::MemoryPerWorkerAboveMemory { .. } => "MemoryPerWorkerAboveMemory",
            SpecError::MemoryPerWorkerTooSmall(_) => "MemoryPerWorkerTooSmall",
            SpecError::VerticalWithoutCpu => "VerticalWithoutCpu",
            SpecError::HorizontalWithWorkers(_) => "HorizontalWithWorkers",
            SpecError::BadWorkers(_) => "BadWorkers",
            SpecError::AutoscalingBounds { .. } => "AutoscalingBounds",
            SpecError::AdminPortClash(_) => "AdminPortClash",
            SpecError::ReservedEnv(_) => "ReservedEnv",
            SpecError::DuplicateEnv(_) => "DuplicateEnv",
            SpecError::BadEnvName(_) => "BadEnvName",
            SpecError::BadName(_) => "BadName",
            SpecError::InitContainerWithoutImage => "InitContainerWithoutImage",
            SpecError::InitContainerWithoutCommand => "InitContainerWithoutCommand",
        }
    }
}

/// A spec that passed every check, as plain numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub image: String,
    pub strategy: Strategy,
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub memory_per_worker: Option<u64>,
    pub workers: Option<WorkerChoice>,
    pub replicas: i32,
    pub port: i32,
    pub admin_port: i32,
}

/// Checks `spec`; the first problem found is the error.
pub fn check(spec: &ClusterAppSpec) -> Result<Checked, SpecError> {
    let image = spec
        .image
        .as_deref()
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .ok_or(SpecError::MissingImage)?
        .to_owned();

    let res = spec.resources.clone().unwrap_or_default();
    let cpu_millis = res
        .cpu
        .as_deref()
        .map(|c| quantity::cpu_millis("spec.resources.cpu", c))
        .transpose()?;
    let memory_bytes = res
        .memory
        .as_deref()
        .map(|m| quantity::bytes("spec.resources.memory", m))
        .transpose()?;

    let scaling = &spec.scaling;
    let memory_per_worker = match scaling.memory_per_worker.as_deref() {
        None => None,
        Some(raw) => {
            let b = quantity::bytes("spec.scaling.memoryPerWorker", raw)?;
            if b < MIN_MEMORY_PER_WORKER {
                return Err(SpecError::MemoryPerWorkerTooSmall(raw.to_owned()));
            }
            if let (Some(mem), Some(mem_raw)) = (memory_bytes, res.memory.as_deref()) {
                if b > mem {
                    return Err(SpecError::MemoryPerWorkerAboveMemory {
                        per_worker: raw.to_owned(),
                        memory: mem_raw.to_owned(),
                    });
                }
            }
            Some(b)
        }
    };

    let workers = scaling.workers.as_ref().map(parse_workers).transpose()?;
    match (scaling.strategy, workers) {
        (Strategy::Vertical, _) if cpu_millis.is_none() => {
            return Err(SpecError::VerticalWithoutCpu)
        }
        (Strategy::Horizontal, Some(WorkerChoice::Count(n))) if n > 1 => {
            return Err(SpecError::HorizontalWithWorkers(n))
        }
        _ => {}
    }

    let replicas = match &scaling.autoscaling {
        Some(a) if a.min_replicas > a.max_replicas => {
            return Err(SpecError::AutoscalingBounds {
                min: a.min_replicas,
                max: a.max_replicas,
            })
        }
        Some(a) => scaling
            .replicas
            .unwrap_or(a.min_replicas)
            .clamp(a.min_replicas, a.max_replicas),
        None => scaling.replicas.unwrap_or(1),
    };

    let admin_port = spec.launcher.admin_port.unwrap_or(DEFAULT_ADMIN_PORT);
    if admin_port == spec.port {
        return Err(SpecError::AdminPortClash(admin_port));
    }

    let mut seen = std::collections::BTreeSet::new();
    for e in &spec.env {
        if !valid_env_name(&e.name) {
            return Err(SpecError::BadEnvName(e.name.clone()));
        }
        if RESERVED_ENV.contains(&e.name.as_str()) {
            return Err(SpecError::ReservedEnv(e.name.clone()));
        }
        if !seen.insert(e.name.as_str()) {
            return Err(SpecError::DuplicateEnv(e.name.clone()));
        }
    }

    if spec.launcher.mode == LauncherMode::InitContainer {
        if spec
            .launcher
            .image
            .as_deref()
            .is_none_or(|i| i.trim().is_empty())
        {
            return Err(SpecError::InitContainerWithoutImage);
        }
        if spec.command.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(SpecError::InitContainerWithoutCommand);
        }
    }

    Ok(Checked {
        image,
        strategy: scaling.strategy,
        cpu_millis,
        memory_bytes,
        memory_per_worker,
        workers,
        replicas,
        port: spec.port,
        admin_port,
    })
}

fn parse_workers(w: &Workers) -> Result<WorkerChoice, SpecError> {
    let bad = || {
        SpecError::BadWorkers(match w {
            Workers::Count(n) => n.to_string(),
            Workers::Text(s) => s.clone(),
        })
    };
    let n: i64 = match w {
        Workers::Text(s) if s.trim().eq_ignore_ascii_case("auto") => return Ok(WorkerChoice::Auto),
        Workers::Text(s) => s.trim().parse().map_err(|_| bad())?,
        Workers::Count(n) => *n,
    };
    if n < 1 || n as u64 > MAX_REQUESTABLE_WORKERS {
        return Err(bad());
    }
    Ok(WorkerChoice::Count(n as u32))
}

/// The Service is named after the app, and Service names are DNS-1035
/// labels (stricter than the DNS-1123 subdomains custom resources allow).
pub fn check_name(name: &str) -> Result<(), SpecError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(SpecError::BadName(name.to_owned()))
    }
}

/// POSIX-ish: letters, digits, `_`, `.`, `-`, not starting with a digit
/// (what the apiserver accepts for container env names).
fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '.' || c == '-')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}
