//! Which platform the process runs on, from environment variables and a
//! few marker files, and the sizes some platforms publish.
//!
//! Specific platforms are checked before generic ones: Knative and Azure
//! Container Apps run on Kubernetes and also set `KUBERNETES_SERVICE_HOST`.
//! Docker Swarm sets no signal at all, so it is only ever explicit
//! (`COREFIT_PLATFORM=swarm`).
//!
//! On a platform a kubelet runs ([`PlatformKind::kubelet_managed`]) the
//! pod's CPU request is read too: first [`CPU_REQUEST_VAR`] (millicores,
//! which the operator wires in by the downward API), else the `cpu.shares`
//! (v1) or `cpu.weight` (v2) the kubelet wrote into corefit's own cgroup,
//! converted back by [`crate::plan::request`]. Elsewhere those figures are
//! only relative weights among siblings, not a request, and are ignored.

use std::path::Path;

use thiserror::Error;

use super::cgroup::{join, WeightFile};
use super::Warnings;
use crate::plan::facts::{CgroupVersion, CpuRequest, Hint, Platform, PlatformKind, RequestSource};
use crate::plan::{request, Env};

/// The pod's CPU request in millicores, as the downward API hands it over
/// (`resourceFieldRef: {resource: requests.cpu, divisor: 1m}`); a trailing
/// `m` is accepted. `0` says the pod requested no CPU.
pub const CPU_REQUEST_VAR: &str = "COREFIT_CPU_REQUEST";

/// An explicit platform name that is not known.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {source_name}={value:?}: expected one of {known}")]
pub struct PlatformError {
    pub source_name: String,
    pub value: String,
    pub known: String,
}

/// Marker files, checked under a root so tests can use fixture trees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarkerFiles {
    pub dockerenv: bool,
    pub containerenv: bool,
    pub service_account: bool,
    /// Whether the CPU reports a hypervisor, when known.
    pub virtualized: Option<bool>,
    /// The CPU weight of the process's own cgroup (a request only where a
    /// kubelet wrote it).
    pub cpu_weight: Option<WeightFile>,
}

impl MarkerFiles {
    /// Looks for the markers under `root`.
    pub fn probe(root: &Path) -> MarkerFiles {
        MarkerFiles {
            dockerenv: join(root, "/.dockerenv").exists(),
            containerenv: join(root, "/run/.containerenv").exists(),
            service_account: join(root, "/var/run/secrets/kubernetes.io/serviceaccount").is_dir(),
            virtualized: super::host::virtualized(root),
            cpu_weight: own_weight(root),
        }
    }
}

/// The process's own cgroup CPU weight under `root`. What goes wrong on
/// the way (unreadable mountinfo...) is said by `probe::limits`, which
/// reads the same files.
fn own_weight(root: &Path) -> Option<WeightFile> {
    let mut ignored = Warnings::new();
    let read = |abs: &str| std::fs::read_to_string(join(root, abs)).unwrap_or_default();
    let (mounts, _) = super::mountinfo::cgroup_mounts(&read("/proc/self/mountinfo"));
    let (members, _) = super::mountinfo::memberships(&read("/proc/self/cgroup"));
    super::cgroup::own_weight(root, &mounts, &members, &mut ignored)
}

/// Detects the platform. `explicit` is the `--platform` flag.
pub fn detect(
    explicit: Option<&str>,
    env: &Env,
    files: &MarkerFiles,
    warnings: &mut Warnings,
) -> Result<Platform, PlatformError> {
    let set = |name: &str| env.get(name).is_some_and(|v| !v.trim().is_empty());
    let from_env = env
        .get("COREFIT_PLATFORM")
        .map(String::as_str)
        .filter(|v| !v.trim().is_empty());
    let chosen = match (explicit, from_env) {
        (Some(v), _) => Some(("--platform", v)),
        (None, Some(v)) => Some(("COREFIT_PLATFORM", v)),
        (None, None) => None,
    };
    let mut platform = if let Some((src, value)) = chosen {
        let kind = PlatformKind::from_id(value).ok_or_else(|| PlatformError {
            source_name: src.to_owned(),
            value: value.to_owned(),
            known: PlatformKind::ALL.map(|k| k.id()).join(", "),
        })?;
        Platform::new(kind, format!("{src}={value}"))
    } else {
        let first_set =
            |names: &[&str]| names.iter().find(|n| set(n)).map(|n| format!("{n} is set"));
        let candidates: [(PlatformKind, Option<String>); 12] = [
            (
                PlatformKind::FlyIo,
                first_set(&["FLY_APP_NAME", "FLY_MACHINE_ID", "FLY_ALLOC_ID"]),
            ),
            (
                PlatformKind::Ecs,
                first_set(&[
                    "ECS_CONTAINER_METADATA_URI_V4",
                    "ECS_CONTAINER_METADATA_URI",
                ])
                .or_else(|| {
                    env.get("AWS_EXECUTION_ENV")
                        .filter(|v| v.starts_with("AWS_ECS"))
                        .map(|v| format!("AWS_EXECUTION_ENV={v}"))
                }),
            ),
            (
                PlatformKind::CloudRun,
                (set("K_SERVICE") && !set("KUBERNETES_SERVICE_HOST"))
                    .then(|| "K_SERVICE is set".to_owned()),
            ),
            (
                PlatformKind::Knative,
                (set("K_SERVICE") && set("KUBERNETES_SERVICE_HOST"))
                    .then(|| "K_SERVICE and KUBERNETES_SERVICE_HOST are set".to_owned()),
            ),
            (PlatformKind::Heroku, first_set(&["DYNO"])),
            (
                PlatformKind::Render,
                first_set(&["RENDER", "RENDER_SERVICE_ID"]),
            ),
            (
                PlatformKind::Railway,
                first_set(&[
                    "RAILWAY_SERVICE_ID",
                    "RAILWAY_ENVIRONMENT_ID",
                    "RAILWAY_PROJECT_ID",
                ]),
            ),
            (
                PlatformKind::AzureContainerApps,
                first_set(&["CONTAINER_APP_NAME"]),
            ),
            (PlatformKind::Nomad, first_set(&["NOMAD_ALLOC_ID"])),
            (
                PlatformKind::Kubernetes,
                first_set(&["KUBERNETES_SERVICE_HOST"]).or_else(|| {
                    files
                        .service_account
                        .then(|| "a Kubernetes service-account token is mounted".to_owned())
                }),
            ),
            (
                PlatformKind::Container,
                files
                    .dockerenv
                    .then(|| "/.dockerenv exists".to_owned())
                    .or_else(|| {
                        files
                            .containerenv
                            .then(|| "/run/.containerenv exists".to_owned())
                    }),
            ),
            (
                PlatformKind::Systemd,
                first_set(&["INVOCATION_ID"]).map(|e| format!("{e}: a systemd service")),
            ),
        ];
        match candidates
            .into_iter()
            .find_map(|(k, why)| why.map(|w| (k, w)))
        {
            Some((kind, why)) => Platform::new(kind, why),
            None => match files.virtualized {
                Some(false) => Platform::new(
                    PlatformKind::BareMetal,
                    "no platform signal; the CPU reports no hypervisor",
                ),
                Some(true) => Platform::new(
                    PlatformKind::Vps,
                    "no platform signal; the CPU reports a hypervisor",
                ),
                None => Platform::new(PlatformKind::Vps, "no platform signal"),
            },
        }
    };
    platform.cpu_hint = cpu_hint(platform.kind, env, warnings);
    platform.memory_hint = memory_hint(platform.kind, env, warnings);
    platform.cpu_request = cpu_request(platform.kind, env, files, warnings);
    Ok(platform)
}

/// The CPU request on a platform a kubelet runs: [`CPU_REQUEST_VAR`], else
/// the cgroup's weight. A value that cannot be read is ignored with a
/// warning naming it.
fn cpu_request(
    kind: PlatformKind,
    env: &Env,
    files: &MarkerFiles,
    warnings: &mut Warnings,
) -> Option<CpuRequest> {
    let var = env.get(CPU_REQUEST_VAR).filter(|v| !v.trim().is_empty());
    if !kind.kubelet_managed() {
        if let Some(v) = var {
            warnings.push(format!(
                "ignoring {CPU_REQUEST_VAR}={v:?}: a CPU request is read only on Kubernetes, and this is {}",
                kind.display_name()
            ));
        }
        return None;
    }
    if let Some(raw) = var {
        match parse_millis(raw) {
            // The downward API says the pod requested no CPU.
            Ok(0) => return None,
            Ok(millis) => {
                return Some(CpuRequest {
                    millis,
                    source: RequestSource::Variable {
                        name: CPU_REQUEST_VAR.to_owned(),
                        value: raw.trim().to_owned(),
                    },
                })
            }
            Err(e) => warnings.push(format!(
                "ignoring {CPU_REQUEST_VAR}={raw:?}: {e}; reading the cgroup's CPU weight instead"
            )),
        }
    }
    let w = files.cpu_weight.as_ref()?;
    let value = match w.text.trim().parse::<u64>() {
        Ok(v) => v,
        Err(_) => {
            warnings.push(format!(
                "ignoring {}: {:?} is not a whole number",
                w.file,
                w.text.trim()
            ));
            return None;
        }
    };
    let millis = match w.version {
        CgroupVersion::V1 => request::millis_from_shares(value),
        CgroupVersion::V2 => request::millis_from_weight(value),
    };
    match millis {
        Ok(m) => m.map(|millis| CpuRequest {
            millis,
            source: RequestSource::Cgroup {
                cgroup: w.version,
                file: w.file.clone(),
                value,
            },
        }),
        Err(e) => {
            warnings.push(format!("ignoring {}: {e}", w.file));
            None
        }
    }
}

/// Millicores: `1500` or `1500m`, at most a million CPUs.
fn parse_millis(raw: &str) -> Result<u64, String> {
    let t = raw.trim();
    let digits = t.strip_suffix('m').unwrap_or(t);
    match digits.parse::<u64>() {
        Ok(m) if m <= 1_000_000_000 => Ok(m),
        Ok(_) => Err("out of range (at most 1000000000 millicores)".to_owned()),
        Err(_) => Err(
            "expected whole millicores, e.g. 1500 (resourceFieldRef requests.cpu with divisor 1m)"
                .to_owned(),
        ),
    }
}

fn cpu_hint(kind: PlatformKind, env: &Env, warnings: &mut Warnings) -> Option<Hint<f64>> {
    let vars = [
        (PlatformKind::Render, "RENDER_CPU_COUNT"),
        (PlatformKind::Nomad, "NOMAD_CPU_CORES"),
    ];
    hint(kind, &vars, env, warnings, |raw| {
        if kind == PlatformKind::Nomad {
            // NOMAD_CPU_CORES is the reserved core list, e.g. "0-1" or "3".
            crate::probe::parse::cpu_list(raw)
                .map(|n| n as f64)
                .map_err(|e| e.to_string())
        } else {
            raw.trim()
                .parse::<f64>()
                .map_err(|_| "not a number".to_owned())
                .and_then(|v| {
                    if v.is_finite() && v > 0.0 && v <= 1e6 {
                        Ok(v)
                    } else {
                        Err("out of range".to_owned())
                    }
                })
        }
    })
}

fn memory_hint(kind: PlatformKind, env: &Env, warnings: &mut Warnings) -> Option<Hint<u64>> {
    let vars = [
        (PlatformKind::FlyIo, "FLY_VM_MEMORY_MB"),
        (PlatformKind::Nomad, "NOMAD_MEMORY_LIMIT"),
    ];
    hint(kind, &vars, env, warnings, |raw| {
        match raw.trim().parse::<u64>() {
            Ok(mb) if mb > 0 && mb <= (1 << 40) => Ok(mb * 1024 * 1024),
            _ => Err("expected a positive number of MiB".to_owned()),
        }
    })
}

/// The size `kind` publishes in its variable among `vars`, read by `parse`;
/// a value `parse` refuses is ignored with a warning.
fn hint<T>(
    kind: PlatformKind,
    vars: &[(PlatformKind, &'static str)],
    env: &Env,
    warnings: &mut Warnings,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<Hint<T>> {
    let &(_, var) = vars.iter().find(|(k, _)| *k == kind)?;
    let raw = env.get(var)?;
    match parse(raw) {
        Ok(value) => Some(Hint {
            value,
            variable: var.to_owned(),
        }),
        Err(e) => {
            warnings.push(format!("ignoring {var}={raw:?}: {e}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn kind(pairs: &[(&str, &str)], files: &MarkerFiles) -> PlatformKind {
        detect(None, &env(pairs), files, &mut Warnings::new())
            .unwrap()
            .kind
    }

    #[test]
    fn signals() {
        let none = MarkerFiles::default();
        assert_eq!(
            kind(&[("KUBERNETES_SERVICE_HOST", "10.96.0.1")], &none),
            PlatformKind::Kubernetes
        );
        assert_eq!(kind(&[("FLY_APP_NAME", "a")], &none), PlatformKind::FlyIo);
        assert_eq!(
            kind(&[("ECS_CONTAINER_METADATA_URI_V4", "http://x")], &none),
            PlatformKind::Ecs
        );
        assert_eq!(
            kind(&[("AWS_EXECUTION_ENV", "AWS_ECS_FARGATE")], &none),
            PlatformKind::Ecs
        );
        assert_eq!(kind(&[("K_SERVICE", "s")], &none), PlatformKind::CloudRun);
        assert_eq!(
            kind(
                &[("K_SERVICE", "s"), ("KUBERNETES_SERVICE_HOST", "h")],
                &none
            ),
            PlatformKind::Knative
        );
        assert_eq!(kind(&[("DYNO", "web.1")], &none), PlatformKind::Heroku);
        assert_eq!(kind(&[("RENDER", "true")], &none), PlatformKind::Render);
        assert_eq!(
            kind(&[("RAILWAY_SERVICE_ID", "x")], &none),
            PlatformKind::Railway
        );
        assert_eq!(
            kind(
                &[
                    ("CONTAINER_APP_NAME", "x"),
                    ("KUBERNETES_SERVICE_HOST", "h")
                ],
                &none
            ),
            PlatformKind::AzureContainerApps
        );
        assert_eq!(kind(&[("NOMAD_ALLOC_ID", "x")], &none), PlatformKind::Nomad);
        assert_eq!(
            kind(&[("INVOCATION_ID", "x")], &none),
            PlatformKind::Systemd
        );
        // Marker files alone, no environment: (dockerenv, containerenv,
        // service account, virtualized).
        for (dockerenv, containerenv, service_account, virtualized, want) in [
            (true, false, false, None, PlatformKind::Container),
            (false, true, false, None, PlatformKind::Container),
            (false, false, true, None, PlatformKind::Kubernetes),
            (false, false, false, Some(false), PlatformKind::BareMetal),
            (false, false, false, Some(true), PlatformKind::Vps),
        ] {
            let files = MarkerFiles {
                dockerenv,
                containerenv,
                service_account,
                virtualized,
                cpu_weight: None,
            };
            assert_eq!(kind(&[], &files), want, "{files:?}");
        }
        assert_eq!(
            kind(&[("COREFIT_PLATFORM", "swarm"), ("DYNO", "x")], &none),
            PlatformKind::Swarm
        );
    }

    #[test]
    fn explicit_flag_beats_env_and_bad_names_are_errors() {
        let e = env(&[("COREFIT_PLATFORM", "heroku")]);
        let p = detect(
            Some("k8s"),
            &e,
            &MarkerFiles::default(),
            &mut Warnings::new(),
        )
        .unwrap();
        assert_eq!(p.kind, PlatformKind::Kubernetes);
        let err = detect(
            None,
            &env(&[("COREFIT_PLATFORM", "mainframe")]),
            &MarkerFiles::default(),
            &mut Warnings::new(),
        )
        .unwrap_err();
        assert_eq!(err.source_name, "COREFIT_PLATFORM");
        assert!(err.to_string().contains("kubernetes"));
    }

    #[test]
    fn published_sizes() {
        let mut w = Warnings::new();
        let sizes = |w: &mut Warnings, pairs: &[(&str, &str)]| {
            detect(None, &env(pairs), &MarkerFiles::default(), w).unwrap()
        };
        let p = sizes(&mut w, &[("RENDER", "true"), ("RENDER_CPU_COUNT", "2")]);
        assert_eq!(p.cpu_hint.unwrap().value, 2.0);
        let p = sizes(
            &mut w,
            &[
                ("NOMAD_ALLOC_ID", "x"),
                ("NOMAD_CPU_CORES", "0-3"),
                ("NOMAD_MEMORY_LIMIT", "1024"),
            ],
        );
        assert_eq!(p.cpu_hint.unwrap().value, 4.0);
        assert_eq!(p.memory_hint.unwrap().value, 1 << 30);
        let p = sizes(
            &mut w,
            &[("FLY_APP_NAME", "a"), ("FLY_VM_MEMORY_MB", "256")],
        );
        assert_eq!(p.memory_hint.unwrap().value, 256 << 20);
        assert!(w.is_empty());
        let p = sizes(&mut w, &[("FLY_APP_NAME", "a"), ("FLY_VM_MEMORY_MB", "-1")]);
        assert!(p.memory_hint.is_none());
        assert!(w[0].contains("FLY_VM_MEMORY_MB"));
    }

    fn weight(version: CgroupVersion, text: &str) -> MarkerFiles {
        MarkerFiles {
            cpu_weight: Some(WeightFile {
                version,
                file: "/sys/fs/cgroup/cpu.weight".to_owned(),
                text: text.to_owned(),
            }),
            ..MarkerFiles::default()
        }
    }

    /// The request and its source: (environment, weight file) -> millis.
    fn requested(pairs: &[(&str, &str)], files: &MarkerFiles) -> (Option<u64>, Warnings) {
        let mut w = Warnings::new();
        let p = detect(None, &env(pairs), files, &mut w).unwrap();
        (p.cpu_request.map(|r| r.millis), w)
    }

    /// On Kubernetes the variable comes first, then the cgroup's weight;
    /// `0` in the variable says no request; elsewhere neither is a request.
    #[test]
    fn the_cpu_request_on_kubernetes_only() {
        let k8s = ("KUBERNETES_SERVICE_HOST", "10.96.0.1");
        let v1 = weight(CgroupVersion::V1, "1536\n");
        let v2 = weight(CgroupVersion::V2, "79\n");
        assert_eq!(requested(&[k8s], &v1), (Some(1500), vec![]));
        assert_eq!(requested(&[k8s], &v2), (Some(2000), vec![]));
        assert_eq!(
            requested(&[k8s, ("COREFIT_CPU_REQUEST", "3000")], &v1),
            (Some(3000), vec![])
        );
        assert_eq!(
            requested(
                &[k8s, ("COREFIT_CPU_REQUEST", "250m")],
                &MarkerFiles::default()
            ),
            (Some(250), vec![])
        );
        assert_eq!(
            requested(&[k8s, ("COREFIT_CPU_REQUEST", "0")], &v1),
            (None, vec![])
        );
        // The defaults and the floor say no request.
        for files in [
            weight(CgroupVersion::V1, "1024"),
            weight(CgroupVersion::V1, "2"),
            weight(CgroupVersion::V2, "100"),
            weight(CgroupVersion::V2, "1"),
        ] {
            assert_eq!(requested(&[k8s], &files), (None, vec![]), "{files:?}");
        }
        // Knative runs on a kubelet too.
        let knative = [k8s, ("K_SERVICE", "s")];
        assert_eq!(requested(&knative, &v1).0, Some(1500));
        // Outside Kubernetes: neither the weight nor the variable.
        for outside in [
            ("DYNO", "web.1"),
            ("INVOCATION_ID", "x"),
            ("FLY_APP_NAME", "a"),
        ] {
            assert_eq!(requested(&[outside], &v1), (None, vec![]));
            let (r, w) = requested(&[outside, ("COREFIT_CPU_REQUEST", "2000")], &v1);
            assert_eq!(r, None);
            assert!(
                w[0].starts_with("ignoring COREFIT_CPU_REQUEST=\"2000\""),
                "{w:?}"
            );
        }
    }

    /// A bad variable or weight is ignored with a warning naming it.
    #[test]
    fn a_bad_request_is_a_warning_naming_it() {
        let k8s = ("KUBERNETES_SERVICE_HOST", "10.96.0.1");
        let v1 = weight(CgroupVersion::V1, "1536");
        for bad in ["1.5", "-1", "two", "2000000000"] {
            let (r, w) = requested(&[k8s, ("COREFIT_CPU_REQUEST", bad)], &v1);
            assert_eq!(r, Some(1500), "{bad}: the weight is read instead");
            assert!(w[0].contains("COREFIT_CPU_REQUEST"), "{w:?}");
        }
        for (version, text) in [
            (CgroupVersion::V1, "abc"),
            (CgroupVersion::V1, "1"),
            (CgroupVersion::V1, "262145"),
            (CgroupVersion::V2, "0"),
            (CgroupVersion::V2, "10001"),
            (CgroupVersion::V2, ""),
        ] {
            let (r, w) = requested(&[k8s], &weight(version, text));
            assert_eq!(r, None, "{text:?}");
            assert!(w[0].contains("/sys/fs/cgroup/cpu.weight"), "{w:?}");
        }
    }
}
