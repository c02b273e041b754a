//! Checks a `ClusterApp` spec beyond what the schema can say, and turns it
//! into plain numbers. Every error names the field(s) at fault; the
//! reconciler reports it as a `Degraded` condition and an event.

use corefit_plan::overrides::{WorkerChoice, MAX_REQUESTABLE_WORKERS, MIN_MEMORY_PER_WORKER};
use thiserror::Error;

use crate::quantity::{self, quoted, shown, QuantityError};
use crate::types::{ClusterAppSpec, LauncherMode, Strategy, Workers, MAX_ARG_BYTES};

/// The most bytes `command`, `args` and `env` (as `NAME=value`) may add
/// up to. The Deployment, each of its ReplicaSets and every pod carry
/// them, with server-side apply's bookkeeping of each entry, and each of
/// those objects must fit etcd's 1.5 MiB request limit; 512 KiB leaves
/// room for the rest. (Linux allows about 2 MiB of arguments and
/// environment in all, so this never refuses a pod that could start.)
pub const MAX_COMMAND_AND_ENV_BYTES: usize = 512 * 1024;

/// The launcher's admin port when the spec names none.
pub const DEFAULT_ADMIN_PORT: i32 = 9901;

/// Environment the operator sets itself.
pub const RESERVED_ENV: [&str; 7] = [
    "COREFIT_CPU_REQUEST",
    "COREFIT_MODE",
    "COREFIT_WORKERS",
    "COREFIT_SCALING",
    "COREFIT_MEMORY_PER_WORKER",
    "COREFIT_ADMIN_PORT",
    "COREFIT_PLATFORM",
];

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpecError {
    #[error("spec.image is missing or blank: a ClusterApp needs a container image")]
    MissingImage,
    #[error("spec.image={} is not an image reference: it holds whitespace, control or non-ASCII characters", quoted(.0))]
    BadImage(String),
    #[error(transparent)]
    Quantity(#[from] QuantityError),
    #[error("spec.scaling.memoryPerWorker={} is above the pod's memory ({field}={}): not even one worker fits", shown(.per_worker), shown(.memory))]
    MemoryPerWorkerAboveMemory {
        per_worker: String,
        memory: String,
        field: &'static str,
    },
    #[error("spec.scaling.memoryPerWorker={} is below the 16Mi minimum per worker", shown(.0))]
    MemoryPerWorkerTooSmall(String),
    #[error("spec.scaling.strategy=Vertical needs spec.resources.cpu (or spec.resources.requests.cpu or spec.resources.limits.cpu): the workers per pod come from the pod's CPUs")]
    VerticalWithoutCpu,
    #[error("{request}={} is above {limit}={}: Kubernetes refuses a request above its limit", shown(.request_value), shown(.limit_value))]
    RequestAboveLimit {
        request: &'static str,
        request_value: String,
        limit: &'static str,
        limit_value: String,
    },
    #[error("{shorthand} is both request and limit; it cannot be given with {explicit}: use {shorthand} alone, or spec.resources.requests and spec.resources.limits")]
    ResourcesConflict {
        shorthand: &'static str,
        explicit: &'static str,
    },
    #[error("spec.scaling.workers={0} conflicts with spec.scaling.strategy=Horizontal, which runs 1 worker per pod")]
    HorizontalWithWorkers(u32),
    #[error("spec.scaling.workers={} is not 'auto' or a whole number from 1 to 4096", quoted(.0))]
    BadWorkers(String),
    #[error("spec.scaling.autoscaling.minReplicas={min} is above spec.scaling.autoscaling.maxReplicas={max}")]
    AutoscalingBounds { min: i32, max: i32 },
    #[error("spec.launcher.adminPort={0} is the same as spec.port: the launcher's admin port needs its own")]
    AdminPortClash(i32),
    #[error("spec.env sets {}, which the operator sets from the spec (spec.scaling, spec.launcher) and its decision", shown(.0))]
    ReservedEnv(String),
    #[error("spec.env sets {} more than once", shown(.0))]
    DuplicateEnv(String),
    #[error("spec.env name {} is not a valid environment variable name", quoted(.0))]
    BadEnvName(String),
    /// Names the field, never the value (it may be a secret).
    #[error("{field} is {bytes} bytes, above {MAX_ARG_BYTES}: the most Linux passes to a program as one argument or NAME=value (the container would fail to start with E2BIG)")]
    StringTooLong { field: String, bytes: usize },
    #[error("spec.command, spec.args and spec.env add up to {0} bytes, above the {MAX_COMMAND_AND_ENV_BYTES}-byte limit: the Deployment, its ReplicaSets and every pod carry them, and each must fit etcd's 1.5 MiB object limit")]
    CommandAndEnvTooLarge(usize),
    /// Names the field, never the value (it may be a secret).
    #[error("{0} holds a NUL character, which no program can be given in an argument or environment variable")]
    NulCharacter(String),
    #[error("metadata.name={} cannot name a Service: it must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter, at most 63 characters)", quoted(.0))]
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
            SpecError::BadImage(_) => "BadImage",
            SpecError::Quantity(_) => "BadQuantity",
            SpecError::MemoryPerWorkerAboveMemory { .. } => "MemoryPerWorkerAboveMemory",
            SpecError::MemoryPerWorkerTooSmall(_) => "MemoryPerWorkerTooSmall",
            SpecError::VerticalWithoutCpu => "VerticalWithoutCpu",
            SpecError::RequestAboveLimit { .. } => "RequestAboveLimit",
            SpecError::ResourcesConflict { .. } => "ResourcesConflict",
            SpecError::HorizontalWithWorkers(_) => "HorizontalWithWorkers",
            SpecError::BadWorkers(_) => "BadWorkers",
            SpecError::AutoscalingBounds { .. } => "AutoscalingBounds",
            SpecError::AdminPortClash(_) => "AdminPortClash",
            SpecError::ReservedEnv(_) => "ReservedEnv",
            SpecError::DuplicateEnv(_) => "DuplicateEnv",
            SpecError::BadEnvName(_) => "BadEnvName",
            SpecError::StringTooLong { .. } => "StringTooLong",
            SpecError::CommandAndEnvTooLarge(_) => "CommandAndEnvTooLarge",
            SpecError::NulCharacter(_) => "NulCharacter",
            SpecError::BadName(_) => "BadName",
            SpecError::InitContainerWithoutImage => "InitContainerWithoutImage",
            SpecError::InitContainerWithoutCommand => "InitContainerWithoutCommand",
        }
    }
}

/// A size as checked: the number, the field it came from and the text as
/// written (for messages and the canonical form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Size {
    pub value: u64,
    pub field: &'static str,
    pub raw: String,
}

/// A resource's request and limit. A limit stated alone is also the
/// request (as Kubernetes defaults it); `spec.resources.cpu`/`memory` is
/// both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sizes {
    pub request: Option<Size>,
    pub limit: Option<Size>,
}

impl Sizes {
    /// Both the request and the limit from one field.
    pub fn both(size: Size) -> Sizes {
        Sizes {
            request: Some(size.clone()),
            limit: Some(size),
        }
    }
}

/// A spec that passed every check, as plain numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub image: String,
    pub strategy: Strategy,
    /// CPU in millicores: the request is what the pod is guaranteed and
    /// what sizes its workers.
    pub cpu: Sizes,
    /// Memory in bytes.
    pub memory: Sizes,
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
    // Image references are ASCII with no whitespace (the kubelet would
    // report InvalidImageName on every pod; say so here, once).
    if !image.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SpecError::BadImage(image));
    }

    let res = spec.resources.clone().unwrap_or_default();
    let requests = res.requests.clone().unwrap_or_default();
    let limits = res.limits.clone().unwrap_or_default();
    let cpu = sizes(
        ("spec.resources.cpu", res.cpu.as_deref()),
        ("spec.resources.requests.cpu", requests.cpu.as_deref()),
        ("spec.resources.limits.cpu", limits.cpu.as_deref()),
        quantity::cpu_millis,
    )?;
    let memory = sizes(
        ("spec.resources.memory", res.memory.as_deref()),
        ("spec.resources.requests.memory", requests.memory.as_deref()),
        ("spec.resources.limits.memory", limits.memory.as_deref()),
        quantity::bytes,
    )?;
    // The memory workers are bounded by: the limit (the OOM boundary the
    // launcher sees), else the request (all a pod with no limit can count on).
    let memory_bound = memory.limit.as_ref().or(memory.request.as_ref());

    let scaling = &spec.scaling;
    let memory_per_worker = match scaling.memory_per_worker.as_deref() {
        None => None,
        Some(raw) => {
            let b = quantity::bytes("spec.scaling.memoryPerWorker", raw)?;
            if b < MIN_MEMORY_PER_WORKER {
                return Err(SpecError::MemoryPerWorkerTooSmall(raw.to_owned()));
            }
            if let Some(mem) = memory_bound {
                if b > mem.value {
                    return Err(SpecError::MemoryPerWorkerAboveMemory {
                        per_worker: raw.to_owned(),
                        memory: mem.raw.clone(),
                        field: mem.field,
                    });
                }
            }
            Some(b)
        }
    };

    let workers = scaling.workers.as_ref().map(parse_workers).transpose()?;
    match (scaling.strategy, workers) {
        (Strategy::Vertical, _) if cpu.request.is_none() => {
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
    check_sizes(spec)?;

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
        cpu,
        memory,
        memory_per_worker,
        workers,
        replicas,
        port: spec.port,
        admin_port,
    })
}

/// One resource's request and limit from the shorthand (both), the
/// request and the limit fields, each `(field, text)`: the shorthand with
/// either of the others is a conflict, a request above its limit an
/// error, a limit alone also the request.
fn sizes(
    shorthand: (&'static str, Option<&str>),
    request: (&'static str, Option<&str>),
    limit: (&'static str, Option<&str>),
    parse: fn(&str, &str) -> Result<u64, QuantityError>,
) -> Result<Sizes, SpecError> {
    let read = |(field, raw): (&'static str, Option<&str>)| {
        raw.map(|r| {
            parse(field, r).map(|value| Size {
                value,
                field,
                raw: r.to_owned(),
            })
        })
        .transpose()
    };
    let (both, request, limit) = (read(shorthand)?, read(request)?, read(limit)?);
    if let Some(both) = both {
        if let Some(other) = request.as_ref().or(limit.as_ref()) {
            return Err(SpecError::ResourcesConflict {
                shorthand: both.field,
                explicit: other.field,
            });
        }
        return Ok(Sizes::both(both));
    }
    match (request, limit) {
        (Some(r), Some(l)) if r.value > l.value => Err(SpecError::RequestAboveLimit {
            request: r.field,
            request_value: r.raw,
            limit: l.field,
            limit_value: l.raw,
        }),
        (None, Some(l)) => Ok(Sizes::both(l)),
        (request, limit) => Ok(Sizes { request, limit }),
    }
}

/// Every string a process gets must be passable to `execve`: no NUL, each
/// at most [`MAX_ARG_BYTES`] (an environment entry as `NAME=value` with
/// its NUL), and all together at most [`MAX_COMMAND_AND_ENV_BYTES`].
/// Errors name the field (and a variable's name), never a value.
fn check_sizes(spec: &ClusterAppSpec) -> Result<(), SpecError> {
    let mut total = 0usize;
    let lists = [("spec.command", &spec.command), ("spec.args", &spec.args)];
    for (list, items) in lists {
        for (i, item) in items.iter().flatten().enumerate() {
            let field = || format!("{list}[{i}]");
            if item.contains('\0') {
                return Err(SpecError::NulCharacter(field()));
            }
            let bytes = item.len() + 1;
            if bytes > MAX_ARG_BYTES {
                return Err(SpecError::StringTooLong {
                    field: field(),
                    bytes,
                });
            }
            total += bytes;
        }
    }
    for (i, e) in spec.env.iter().enumerate() {
        let value = e.value.as_deref().unwrap_or("");
        let field = || format!("spec.env[{i}] ({})", e.name);
        if value.contains('\0') {
            return Err(SpecError::NulCharacter(format!("the value of {}", field())));
        }
        let bytes = e.name.len() + 1 + value.len() + 1;
        if bytes > MAX_ARG_BYTES {
            return Err(SpecError::StringTooLong {
                field: format!("{} as NAME=value", field()),
                bytes,
            });
        }
        total += bytes;
    }
    if total > MAX_COMMAND_AND_ENV_BYTES {
        return Err(SpecError::CommandAndEnvTooLarge(total));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> ClusterAppSpec {
        serde_json::from_value(v).expect("spec")
    }

    fn env(vars: &[(&str, &str)]) -> serde_json::Value {
        vars.iter()
            .map(|(n, v)| serde_json::json!({"name": n, "value": v}))
            .collect()
    }

    #[test]
    fn images_must_be_printable_ascii() {
        for bad in ["ünïcødé:1", "x\ny:1", "a b:1", "app:1\u{0}", "x\u{7f}"] {
            let e = check(&spec(serde_json::json!({"image": bad}))).unwrap_err();
            assert_eq!(e.reason(), "BadImage", "{bad:?}");
            assert!(e.to_string().starts_with("spec.image="), "{e}");
        }
        // Surrounding blanks are trimmed, as before.
        for ok in [
            "registry.example:5000/team/api:2.0.0",
            "api@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "  web:1  ",
        ] {
            assert!(
                check(&spec(serde_json::json!({"image": ok}))).is_ok(),
                "{ok}"
            );
        }
    }

    const SECRET: &str = "hunter2-s3cr3t";

    /// Size and NUL errors name the field and the variable, never a value.
    #[test]
    fn oversized_or_nul_strings_are_refused_by_name() {
        let at_limit = "x".repeat(MAX_ARG_BYTES - 3);
        assert!(check(&spec(
            serde_json::json!({"image": "a", "env": env(&[("A", &at_limit)])})
        ))
        .is_ok());
        let over = format!("{SECRET}{}", "x".repeat(MAX_ARG_BYTES));
        // 50,000 three-byte characters: under the schema's 131072-character
        // bound, over Linux's 131072 bytes.
        let euros = "€".repeat(50_000);
        let with_nul = format!("{SECRET}\0tail");
        let cases: [(serde_json::Value, &str, &str); 6] = [
            (
                serde_json::json!({"image": "a", "env": env(&[("OK", "1"), ("DB_PASSWORD", &over)])}),
                "StringTooLong",
                "spec.env[1] (DB_PASSWORD)",
            ),
            (
                serde_json::json!({"image": "a", "env": env(&[("GREETING", &euros)])}),
                "StringTooLong",
                "150010 bytes",
            ),
            (
                serde_json::json!({"image": "a", "args": ["ok", over]}),
                "StringTooLong",
                "spec.args[1]",
            ),
            (
                serde_json::json!({"image": "a", "env": env(&[("API_TOKEN", &with_nul)])}),
                "NulCharacter",
                "the value of spec.env[0] (API_TOKEN)",
            ),
            (
                serde_json::json!({"image": "a", "command": ["node", with_nul]}),
                "NulCharacter",
                "spec.command[1]",
            ),
            (
                serde_json::json!({"image": "a", "env": (0..600)
                    .map(|i| serde_json::json!({"name": format!("V{i}"), "value": format!("{SECRET}{}", "x".repeat(1000))}))
                    .collect::<Vec<_>>()}),
                "CommandAndEnvTooLarge",
                "add up to 611890 bytes",
            ),
        ];
        for (s, reason, text) in cases {
            let e = check(&spec(s)).unwrap_err();
            let msg = e.to_string();
            assert_eq!(e.reason(), reason, "{msg}");
            assert!(msg.contains(text), "{msg:?} should contain {text:?}");
            assert!(!msg.contains(SECRET), "{msg} shows a value");
            assert!(msg.len() < 400, "{msg}");
        }
    }

    /// A megabyte of input in a field the message quotes is cut.
    #[test]
    fn messages_quote_at_most_a_little_of_the_input() {
        let huge = "9".repeat(1 << 20);
        for s in [
            serde_json::json!({"image": "a", "scaling": {"workers": huge}}),
            serde_json::json!({"image": format!("a {huge}")}),
            serde_json::json!({"image": "a", "resources": {"memory": huge}}),
        ] {
            let msg = check(&spec(s)).unwrap_err().to_string();
            assert!(msg.len() < 300, "{} bytes: {}", msg.len(), &msg[..100]);
            assert!(
                msg.contains("(1048576 bytes)") || msg.contains("(1048578 bytes)"),
                "{msg}"
            );
        }
        let name = "x".repeat(300);
        assert!(check_name(&name).unwrap_err().to_string().len() < 300);
        let e = SpecError::BadEnvName(format!("{name}\u{0}"));
        assert!(e.to_string().len() < 300);
    }
}
