//! The `ClusterApp` custom resource (`corefit.dev/v1alpha1`, namespaced).
//!
//! Every field carries a doc comment: they become the schema's
//! descriptions, so `kubectl explain clusterapp.spec.scaling` reads them.
//! The schema checks shapes (ranges, enums, quantity syntax); what needs
//! more than one field to judge (memory per worker above the pod's memory,
//! a Vertical app with no CPU limit...) is checked by [`crate::validate`]
//! and reported as a `Degraded` condition.

use std::borrow::Cow;

use kube::CustomResource;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

/// A Kubernetes quantity as users write it: `500m`, `2`, `1.5`, `512Mi`, `1G`.
pub const QUANTITY_PATTERN: &str =
    r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$";

/// An app run under the corefit launcher: the operator turns it into a
/// Deployment and a Service, and decides between more replicas
/// (horizontal) and more workers per pod (vertical) with the launcher's own
/// decision matrix.
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[kube(
    group = "corefit.dev",
    version = "v1alpha1",
    kind = "ClusterApp",
    plural = "clusterapps",
    singular = "clusterapp",
    shortname = "capp",
    namespaced,
    status = "ClusterAppStatus",
    derive = "PartialEq",
    doc = "An app run under the corefit launcher, reconciled into a Deployment and a Service.",
    scale = r#"{"specReplicasPath":".spec.scaling.replicas","statusReplicasPath":".status.replicas","labelSelectorPath":".status.selector"}"#,
    printcolumn = r#"{"name":"MODE","type":"string","description":"single process or cluster of workers","jsonPath":".status.mode"}"#,
    printcolumn = r#"{"name":"REPLICAS","type":"integer","description":"pods wanted","jsonPath":".status.replicas"}"#,
    printcolumn = r#"{"name":"WORKERS","type":"integer","description":"worker processes per pod","jsonPath":".status.workersPerPod"}"#,
    printcolumn = r#"{"name":"READY","type":"integer","description":"pods ready","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAppSpec {
    /// The container image of the app. Required: an app without one is
    /// reported as Degraded (reason InvalidSpec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// The app's command (the container's entrypoint is replaced by the
    /// launcher, which then runs this). Defaults to the image's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,

    /// Arguments for the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,

    /// The port the app serves on; the Service exposes it under the same
    /// number.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Extra environment for the app. `COREFIT_MODE` and `COREFIT_WORKERS`
    /// are set by the operator and may not appear here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,

    /// CPU and memory of each pod (used as both request and limit, so the
    /// launcher inside sees exactly these limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<PodResources>,

    /// How the app grows: more pods, more workers per pod, or the launcher's
    /// rules choosing between them.
    #[serde(default)]
    pub scaling: Scaling,

    /// The HTTP path the app answers health checks on (readiness probe on
    /// the app port). Defaults to `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/"))]
    pub health_check_path: Option<String>,

    /// How the launcher reaches the pod.
    #[serde(default)]
    pub launcher: Launcher,
}

fn default_port() -> i32 {
    8080
}

/// One environment variable.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
pub struct EnvVar {
    /// The variable's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Its value (empty when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// CPU and memory for each pod.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodResources {
    /// CPUs per pod as a Kubernetes quantity (`500m`, `2`, `1.5`). Vertical
    /// scaling runs floor(cpu) workers per pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
    ))]
    pub cpu: Option<String>,
    /// Memory per pod as a Kubernetes quantity (`512Mi`, `2Gi`). Bounds the
    /// workers per pod at floor(memory / memoryPerWorker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
    ))]
    pub memory: Option<String>,
}

/// Who adds capacity.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq, JsonSchema)]
pub enum Strategy {
    /// The launcher's rules decide: a pod given 2 or more whole CPUs runs
    /// floor(CPUs) workers (bounded by memory), otherwise one process per
    /// pod and more pods. The status says why.
    #[default]
    Auto,
    /// One worker per pod; capacity comes from more replicas.
    Horizontal,
    /// floor(pod CPUs) workers per pod, bounded by memory; needs
    /// `resources.cpu`.
    Vertical,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Auto => "Auto",
            Strategy::Horizontal => "Horizontal",
            Strategy::Vertical => "Vertical",
        }
    }
}

/// Scaling settings.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Scaling {
    /// `Auto` (default): the launcher's rules decide; a pod given 2 or more
    /// whole CPUs runs floor(CPUs) workers (bounded by memory), otherwise 1
    /// process per pod; the status says why. `Horizontal`: 1 worker per
    /// pod, capacity from replicas. `Vertical`: floor(pod CPUs) workers per
    /// pod, bounded by memory (needs `resources.cpu`).
    #[serde(default)]
    pub strategy: Strategy,
    /// Pods wanted (the scale subresource and `kubectl scale` set this).
    /// Defaults to 1, or to `autoscaling.minReplicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,
    /// Let a HorizontalPodAutoscaler (made by the operator, in
    /// `autoscaling/v2` or `v2beta2`, whichever the cluster serves) scale
    /// the Deployment within these bounds on CPU utilization; `replicas`
    /// is then ignored and `status.replicasOwner` says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// Worker processes per pod: `auto` (the decision matrix) or a number
    /// from 1 to 4096 (capped by the pod's CPUs and memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<Workers>,
    /// Memory budget per worker as a quantity (default 512Mi); the workers
    /// per pod never exceed floor(pod memory / this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
    ))]
    pub memory_per_worker: Option<String>,
}

/// Autoscaling bounds.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Autoscaling {
    /// The fewest pods.
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,
    /// The most pods; at least `minReplicas`.
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Average CPU utilization to aim for, in percent of the pod's CPU.
    #[serde(default = "default_target", rename = "targetCPUUtilizationPercentage")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: i32,
}

fn default_target() -> i32 {
    80
}

/// `auto` or a worker count.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(untagged)]
pub enum Workers {
    Count(i64),
    Text(String),
}

impl JsonSchema for Workers {
    fn schema_name() -> Cow<'static, str> {
        "Workers".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "`auto` or a number of workers from 1 to 4096.",
            "x-kubernetes-int-or-string": true,
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": 4096},
                {"type": "string", "pattern": "^(auto|[0-9]+)$"}
            ]
        })
    }
}

/// How the launcher gets into the pod.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq, JsonSchema)]
pub enum LauncherMode {
    /// The image already has `corefit` on its PATH.
    #[default]
    InImage,
    /// An init container copies `corefit` from `launcher.image` into a
    /// shared volume.
    InitContainer,
}

/// The launcher in the pod.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Launcher {
    /// `InImage` (default) or `InitContainer`.
    #[serde(default)]
    pub mode: LauncherMode,
    /// The image holding `/corefit` (required for `InitContainer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The launcher's admin port (`/health`, `/metrics`); the liveness probe
    /// uses it. Defaults to 9901; must differ from `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub admin_port: Option<i32>,
}

/// What the operator decided and saw.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAppStatus {
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `single` or `cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `horizontal` or `vertical`: who adds capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<String>,
    /// Pods wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Who sets the replica count: `ClusterApp` (its `scaling.replicas`)
    /// or `HorizontalPodAutoscaler` (with `scaling.autoscaling`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas_owner: Option<String>,
    /// Pods ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Worker processes per pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers_per_pod: Option<i32>,
    /// The pods' label selector as a string (for the scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Every step of the decision, in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// `Ready`, `Progressing` and `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A condition in the usual Kubernetes shape.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Progressing` or `Degraded`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase word.
    pub reason: String,
    /// What happened, for people.
    pub message: String,
    /// When `status` last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The generation this condition describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
