//! `desired(&ClusterApp, &ClusterInfo)`: the Deployment and Service an app
//! should have, computed with no I/O. The reconciler applies them with
//! server-side apply; tests compare them field by field.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, ExecAction,
    HTTPGetAction, Lifecycle, LifecycleHandler, PodSpec, PodTemplateSpec, Probe,
    ResourceFieldSelector, ResourceRequirements, SecurityContext, Service, ServicePort,
    ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use thiserror::Error;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use crate::autoscale::{floor_replicas, hpa, pdb, ReplicasOwner};
use crate::decide::{decide, ClusterInfo, Decision};
use crate::quantity::{canonical_bytes, canonical_cpu};
use crate::types::{ClusterApp, LauncherMode};
use crate::validate::{check, check_name, Size, SpecError};

/// The field manager for every write the operator makes.
pub const MANAGER: &str = "corefit-operator";
/// The label that ties pods to their app.
pub const APP_LABEL: &str = "corefit.dev/app";
/// Where an injected launcher lives in the pod.
const LAUNCHER_DIR: &str = "/corefit-bin";
/// The launcher image's user (launcher/Dockerfile: `USER 65532:65532`).
const LAUNCHER_UID: i64 = 65532;
/// How long a leaving pod keeps serving before its launcher is told to
/// stop (the preStop hook's `sleep`): a deleted pod leaves its Service's
/// endpoints at the same time as the kubelet stops it, and whoever still
/// routes to it (kube-proxy, an ingress, a client's own list) learns so
/// only a moment later. Without the delay, corefit closes its listener at
/// SIGTERM and those connections are refused (the real node's rollout
/// test saw 2 of 1,047).
pub const STOP_DELAY_SECS: i64 = 5;
/// The launcher's own grace period after SIGTERM (`--grace-period`
/// default, 25 s).
const LAUNCHER_GRACE_SECS: i64 = 25;
/// The pod's grace period: the delay, the launcher's grace and 5 s more,
/// so the kubelet's SIGKILL never cuts the launcher's orderly stop short.
pub const TERMINATION_GRACE_SECS: i64 = STOP_DELAY_SECS + LAUNCHER_GRACE_SECS + 5;

#[derive(Debug, Error)]
pub enum DesiredError {
    #[error("invalid spec: {0}")]
    Spec(#[from] SpecError),
    #[error("the ClusterApp has no {0} yet (not read from the API server?)")]
    Metadata(&'static str),
}

/// What an app should have.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub decision: Decision,
    pub deployment: Deployment,
    pub service: Service,
    /// The autoscaler, when the spec asks for one (typed as
    /// `autoscaling/v2`; see [`crate::autoscale`]).
    pub hpa: Option<HorizontalPodAutoscaler>,
    /// The disruption budget, when the app never runs fewer than 2 pods.
    pub pdb: Option<PodDisruptionBudget>,
    /// Who sets the Deployment's replicas. With the HPA, the Deployment's
    /// `spec.replicas` here is only its starting value.
    pub replicas_owner: ReplicasOwner,
    /// The pods' label selector as a string, for the scale subresource.
    pub selector: String,
}

/// The labels on everything made for `name`.
pub fn labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), name.to_owned()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            MANAGER.to_owned(),
        ),
        (APP_LABEL.to_owned(), name.to_owned()),
    ])
}

/// Computes the children of `app`.
pub fn desired(app: &ClusterApp, info: &ClusterInfo) -> Result<Desired, DesiredError> {
    // The operator's default launcher image stands in for a missing one.
    let defaulted;
    let spec = if app.spec.launcher.mode == LauncherMode::InitContainer
        && app
            .spec
            .launcher
            .image
            .as_deref()
            .is_none_or(|i| i.trim().is_empty())
        && info.launcher_image.is_some()
    {
        let mut s = app.spec.clone();
        s.launcher.image = info.launcher_image.clone();
        defaulted = s;
        &defaulted
    } else {
        &app.spec
    };
    let checked = check(spec)?;
    let decision = decide(&checked, info);
    let name = app
        .metadata
        .name
        .clone()
        .ok_or(DesiredError::Metadata("name"))?;
    check_name(&name)?;
    let namespace = app.namespace().ok_or(DesiredError::Metadata("namespace"))?;
    let owner = owner_ref(app).ok_or(DesiredError::Metadata("uid"))?;
    let labels = labels(&name);
    let selector_labels = BTreeMap::from([(APP_LABEL.to_owned(), name.clone())]);
    let meta = ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(namespace),
        labels: Some(labels.clone()),
        owner_references: Some(vec![owner]),
        ..ObjectMeta::default()
    };

    let mut env: Vec<EnvVar> = spec
        .env
        .iter()
        .map(|e| env_var(&e.name, e.value.as_deref().unwrap_or("")))
        .collect();
    // The launcher in the pod reads these as its overrides, so its own
    // plan (`corefit plan`, /health) reaches the decision the status shows:
    // the same mode, workers, scaling and memory budget per worker.
    env.extend([
        env_var("COREFIT_MODE", decision.mode.as_str()),
        env_var("COREFIT_WORKERS", &decision.workers.to_string()),
        env_var("COREFIT_SCALING", decision.scaling.as_str()),
    ]);
    if let Some(b) = checked.memory_per_worker {
        env.push(env_var("COREFIT_MEMORY_PER_WORKER", &launcher_size(b)));
    }
    env.extend([
        env_var("COREFIT_ADMIN_PORT", &checked.admin_port.to_string()),
        env_var("COREFIT_PLATFORM", "kubernetes"),
        env_var("PORT", &checked.port.to_string()),
    ]);
    // The launcher sizes from the CPU request when no quota binds it (a
    // request with no CPU limit): hand it over exactly, in millicores.
    if checked.cpu.request.is_some() {
        env.push(EnvVar {
            name: "COREFIT_CPU_REQUEST".to_owned(),
            value_from: Some(EnvVarSource {
                resource_field_ref: Some(ResourceFieldSelector {
                    container_name: Some("app".to_owned()),
                    resource: "requests.cpu".to_owned(),
                    divisor: Some(Quantity("1m".to_owned())),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
    }

    // Requests and limits as the spec states them (`cpu`/`memory` are
    // both); no CPU limit when none is given.
    let resources = {
        let mut requests = BTreeMap::new();
        let mut limits = BTreeMap::new();
        let cpu = |s: &Size| Quantity(canonical_cpu(s.value));
        let memory = |s: &Size| Quantity(canonical_bytes(&s.raw, s.value));
        for (map, size) in [
            (&mut requests, &checked.cpu.request),
            (&mut limits, &checked.cpu.limit),
        ] {
            if let Some(s) = size {
                map.insert("cpu".to_owned(), cpu(s));
            }
        }
        for (map, size) in [
            (&mut requests, &checked.memory.request),
            (&mut limits, &checked.memory.limit),
        ] {
            if let Some(s) = size {
                map.insert("memory".to_owned(), memory(s));
            }
        }
        (!requests.is_empty() || !limits.is_empty()).then(|| ResourceRequirements {
            requests: (!requests.is_empty()).then_some(requests),
            limits: (!limits.is_empty()).then_some(limits),
            ..ResourceRequirements::default()
        })
    };

    let (command, init_containers, volumes, mounts) = match spec.launcher.mode {
        LauncherMode::InImage => (
            spec.command
                .as_ref()
                .filter(|c| !c.is_empty())
                .map(|c| launcher_command("corefit", c)),
            None,
            None,
            None,
        ),
        LauncherMode::InitContainer => {
            let mount = VolumeMount {
                name: "corefit-launcher".to_owned(),
                mount_path: LAUNCHER_DIR.to_owned(),
                ..VolumeMount::default()
            };
            // The copy keeps /corefit's mode (0755 in the launcher image,
            // under the runtime's 0022 umask), so the app's user, whoever
            // it is, may run it; the emptyDir is writable by any user.
            let init = Container {
                name: "corefit-launcher".to_owned(),
                image: spec.launcher.image.clone(),
                command: Some(vec![
                    "cp".to_owned(),
                    "/corefit".to_owned(),
                    format!("{LAUNCHER_DIR}/corefit"),
                ]),
                volume_mounts: Some(vec![mount.clone()]),
                // The app's own sizes: the pod asks for no more than the
                // app (requests are the larger of init and app), and a
                // Guaranteed pod stays Guaranteed (every container's
                // requests equal its limits).
                resources: resources.clone(),
                security_context: Some(copy_security_context()),
                ..Container::default()
            };
            // The app reads and runs the launcher, never replaces it.
            let mount = VolumeMount {
                read_only: Some(true),
                ..mount
            };
            let volume = Volume {
                name: "corefit-launcher".to_owned(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            };
            (
                Some(launcher_command(
                    &format!("{LAUNCHER_DIR}/corefit"),
                    spec.command.as_deref().unwrap_or_default(),
                )),
                Some(vec![init]),
                Some(vec![volume]),
                Some(vec![mount]),
            )
        }
    };

    let container = Container {
        name: "app".to_owned(),
        image: Some(checked.image.clone()),
        command,
        args: spec.args.clone().filter(|a| !a.is_empty()),
        env: Some(env),
        ports: Some(vec![
            ContainerPort {
                name: Some("http".to_owned()),
                container_port: checked.port,
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("corefit-admin".to_owned()),
                container_port: checked.admin_port,
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            },
        ]),
        resources,
        readiness_probe: Some(http_probe(
            spec.health_check_path.as_deref().unwrap_or("/"),
            "http",
        )),
        liveness_probe: Some(Probe {
            initial_delay_seconds: Some(5),
            ..http_probe("/health", "corefit-admin")
        }),
        lifecycle: Some(stop_delay()),
        volume_mounts: mounts,
        ..Container::default()
    };

    let deployment = Deployment {
        metadata: meta.clone(),
        spec: DeploymentSpec {
            replicas: Some(decision.replicas),
            selector: LabelSelector {
                match_labels: Some(selector_labels.clone()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    init_containers,
                    volumes,
                    termination_grace_period_seconds: Some(TERMINATION_GRACE_SECS),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    };

    let autoscaling = spec.scaling.autoscaling.as_ref();
    let hpa = autoscaling.map(|a| hpa(&meta, &name, a));
    let pdb = pdb(
        &meta,
        &selector_labels,
        floor_replicas(decision.replicas, autoscaling),
    );
    let replicas_owner = if hpa.is_some() {
        ReplicasOwner::HorizontalPodAutoscaler
    } else {
        ReplicasOwner::ClusterApp
    };

    let service = Service {
        metadata: meta,
        spec: Some(ServiceSpec {
            selector: Some(selector_labels),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: checked.port,
                target_port: Some(IntOrString::String("http".to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };

    Ok(Desired {
        decision,
        deployment,
        service,
        hpa,
        pdb,
        replicas_owner,
        selector: format!("{APP_LABEL}={name}"),
    })
}

fn owner_ref(app: &ClusterApp) -> Option<OwnerReference> {
    let mut r = app.controller_owner_ref(&())?;
    r.block_owner_deletion = Some(true);
    Some(r)
}

/// The launcher copy runs as the launcher image's non-root user, on a
/// read-only root filesystem, with no capability and no way to gain one:
/// `cp` needs only to read `/corefit` and write the emptyDir.
fn copy_security_context() -> SecurityContext {
    SecurityContext {
        run_as_user: Some(LAUNCHER_UID),
        run_as_group: Some(LAUNCHER_UID),
        run_as_non_root: Some(true),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        ..SecurityContext::default()
    }
}

/// The preStop hook: `sleep` [`STOP_DELAY_SECS`] before the kubelet's
/// SIGTERM. An image with no `sleep` on its PATH (distroless) gets a
/// FailedPreStopHook event and is stopped at once, as with no hook.
/// (Kubernetes 1.29's `preStop.sleep` needs no binary, but older
/// apiservers drop it and refuse the empty handler.)
fn stop_delay() -> Lifecycle {
    Lifecycle {
        pre_stop: Some(LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(vec!["sleep".to_owned(), STOP_DELAY_SECS.to_string()]),
            }),
            ..LifecycleHandler::default()
        }),
        ..Lifecycle::default()
    }
}

fn env_var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..EnvVar::default()
    }
}

/// A size as the launcher parses it (`corefit_plan::size`), exactly: a
/// Kubernetes quantity such as `0.5Gi` or `1e9` is no launcher size.
fn launcher_size(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{}Mi", bytes >> 20)
    } else if bytes.is_multiple_of(1 << 10) {
        format!("{}Ki", bytes >> 10)
    } else {
        format!("{bytes}B")
    }
}

fn launcher_command(launcher: &str, app: &[String]) -> Vec<String> {
    let mut c = vec![launcher.to_owned(), "--".to_owned()];
    c.extend(app.iter().cloned());
    c
}

fn http_probe(path: &str, port: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String(port.to_owned()),
            scheme: Some("HTTP".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(10),
        ..Probe::default()
    }
}
