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
use serde::{Deserialize, Deserializer, Serialize};

/// A Kubernetes quantity as users write it: `500m`, `2`, `1.5`, `512Mi`, `1G`.
pub const QUANTITY_PATTERN: &str =
    r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$";

/// The most entries `command`, `args` and `env` each hold (the schema's
/// `maxItems`): far more than any app needs, and small enough that the
/// per-entry bookkeeping of server-side apply cannot push the Deployment
/// past etcd's object size limit.
pub const MAX_LIST_ITEMS: usize = 1000;

/// The longest single string Linux passes to a program, as an argument or
/// as one `NAME=value` environment entry with its NUL (`MAX_ARG_STRLEN`,
/// 32 pages): `execve` fails with E2BIG beyond it. The schema bounds the
/// characters; [`crate::validate`] counts the bytes.
pub const MAX_ARG_BYTES: usize = 131_072;

/// An environment variable name as the API server accepts it for a
/// container (`IsEnvVarName`): letters, digits, `_`, `.`, `-`, not
/// starting with a digit.
pub const ENV_NAME_PATTERN: &str = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$";

/// The app's name names its Deployment, Service, HPA and PDB, and is the
/// value of their labels: Services need a DNS-1035 label (at most 63
/// characters, a lowercase letter first), so the CRD holds
/// `metadata.name` to that ([`crate::crd`] adds it to the schema).
pub const NAME_PATTERN: &str = r"^[a-z]([-a-z0-9]*[a-z0-9])?$";
/// See [`NAME_PATTERN`].
pub const NAME_MAX_LENGTH: usize = 63;

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
    /// reported as Degraded (reason InvalidSpec). At most 4096 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub image: Option<String>,

    /// The app's command (the container's entrypoint is replaced by the
    /// launcher, which then runs this). Defaults to the image's own. At
    /// most 1000 entries of at most 128 KiB each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000), inner(length(max = 131072)))]
    pub command: Option<Vec<String>>,

    /// Arguments for the command. At most 1000 entries of at most 128 KiB
    /// each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000), inner(length(max = 131072)))]
    pub args: Option<Vec<String>>,

    /// The port the app serves on; the Service exposes it under the same
    /// number.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Extra environment for the app. `COREFIT_MODE` and `COREFIT_WORKERS`
    /// are set by the operator and may not appear here. At most 1000
    /// variables; with `command` and `args` at most 512 KiB in all (the
    /// Deployment, its ReplicaSets and every pod carry them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub env: Vec<EnvVar>,

    /// CPU and memory of each pod: `cpu` and `memory` as both request and
    /// limit, or `requests` apart from `limits` (a CPU request with no CPU
    /// limit is the common practice). The operator sizes workers from the
    /// CPU the pod is guaranteed: its CPU request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<PodResources>,

    /// How the app grows: more pods, more workers per pod, or the launcher's
    /// rules choosing between them.
    #[serde(default)]
    pub scaling: Scaling,

    /// The HTTP path the app answers health checks on (readiness probe on
    /// the app port). Defaults to `/`; at most 4096 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/"), length(max = 4096))]
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
    /// The variable's name: letters, digits, `_`, `.` and `-`, not
    /// starting with a digit.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
    )]
    pub name: String,
    /// Its value (empty when omitted); at most 128 KiB with the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 131072))]
    pub value: Option<String>,
}

/// CPU and memory for each pod.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodResources {
    /// CPUs per pod as a Kubernetes quantity (`500m`, `2`, `1.5`), used as
    /// both request and limit. Vertical scaling runs floor(cpu) workers per
    /// pod. Not with `requests.cpu` or `limits.cpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
    ))]
    pub cpu: Option<String>,
    /// Memory per pod as a Kubernetes quantity (`512Mi`, `2Gi`), used as
    /// both request and limit. Bounds the workers per pod at
    /// floor(memory / memoryPerWorker). Not with `requests.memory` or
    /// `limits.memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
    ))]
    pub memory: Option<String>,
    /// What each pod is guaranteed (the scheduler reserves it). The CPU
    /// request sizes the workers per pod (floor(requests.cpu)); the launcher
    /// in the pod is handed it as `COREFIT_CPU_REQUEST`. A request with no
    /// limit is allowed; a request above its limit is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<ResourceSizes>,
    /// The most each pod may use. `limits.cpu` is optional: without it the
    /// pod has no CPU quota and may burst above its request. A limit with
    /// no request requests the limit (as Kubernetes does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceSizes>,
}

/// A CPU and a memory size, each optional.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSizes {
    /// CPUs as a Kubernetes quantity (`500m`, `2`, `1.5`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
    ))]
    pub cpu: Option<String>,
    /// Memory as a Kubernetes quantity (`512Mi`, `2Gi`).
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
    /// floor(pod CPUs) workers per pod (the CPU request), bounded by
    /// memory; needs a CPU size (`resources.cpu`, `resources.requests.cpu`
    /// or `resources.limits.cpu`).
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
    /// pod, bounded by memory (needs a CPU size: `resources.cpu`,
    /// `resources.requests.cpu` or `resources.limits.cpu`).
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
        // The bounds sit on the int-or-string node itself: `minimum` and
        // `maximum` apply to a number only, `pattern` to a string only. (In
        // an `anyOf` of the two, each branch let the other kind through
        // unchecked: `workers: -5` passed the schema.)
        json_schema!({
            "description": "`auto` or a number of workers from 1 to 4096.",
            "x-kubernetes-int-or-string": true,
            "minimum": 1,
            "maximum": 4096,
            "pattern": "^(auto|[0-9]+)$"
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
    /// The image holding `/corefit` (required for `InitContainer`). At
    /// most 4096 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
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
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_count"
    )]
    #[schemars(range(min = 0, max = 2147483647))]
    pub replicas: Option<i32>,
    /// Who sets the replica count: `ClusterApp` (its `scaling.replicas`)
    /// or `HorizontalPodAutoscaler` (with `scaling.autoscaling`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas_owner: Option<String>,
    /// Pods ready.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_count"
    )]
    #[schemars(range(min = 0, max = 2147483647))]
    pub ready_replicas: Option<i32>,
    /// Worker processes per pod.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_count"
    )]
    #[schemars(range(min = 0, max = 2147483647))]
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

/// Reads a count in the status. The operator writes these; anything else
/// found there (out of range, negative, not a whole number: written by
/// someone else, or stored before the schema bounded them) reads as
/// absent, so one odd object cannot make the list of all apps fail to
/// decode and stall the operator. Its next status write replaces it.
fn lenient_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(v.as_ref()
        .and_then(serde_json::Value::as_i64)
        .and_then(|n| i32::try_from(n).ok())
        .filter(|n| *n >= 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app_with_status(status: serde_json::Value) -> serde_json::Value {
        json!({
            "apiVersion": "corefit.dev/v1alpha1",
            "kind": "ClusterApp",
            "metadata": {"name": "a", "namespace": "n"},
            "spec": {"image": "x"},
            "status": status,
        })
    }

    /// Junk in the status never fails the decoding of the app (a list
    /// with one such object would otherwise fail as a whole).
    #[test]
    fn odd_status_counts_read_as_absent() {
        for junk in [
            json!(3_000_000_000_i64),
            json!(-1),
            json!(-9_999_999_999_i64),
            json!(1.5),
            json!(1e308),
            json!(u64::MAX),
            json!("7"),
            json!(null),
        ] {
            let v = app_with_status(json!({
                "replicas": junk, "readyReplicas": junk, "workersPerPod": junk,
                "mode": "single"
            }));
            let app: ClusterApp =
                serde_json::from_value(v).unwrap_or_else(|e| panic!("{junk}: {e}"));
            let st = app.status.unwrap();
            assert_eq!(
                (st.replicas, st.ready_replicas, st.workers_per_pod),
                (None, None, None),
                "{junk}"
            );
            assert_eq!(st.mode.as_deref(), Some("single"));
        }
        let v = app_with_status(json!({"replicas": 3, "readyReplicas": 0, "workersPerPod": 2}));
        let st = serde_json::from_value::<ClusterApp>(v)
            .unwrap()
            .status
            .unwrap();
        assert_eq!(
            (st.replicas, st.ready_replicas, st.workers_per_pod),
            (Some(3), Some(0), Some(2))
        );
        // Absent stays absent, and round-trips.
        let v = app_with_status(json!({}));
        let app = serde_json::from_value::<ClusterApp>(v).unwrap();
        assert_eq!(app.status, Some(ClusterAppStatus::default()));
        let back = serde_json::to_value(&app).unwrap();
        assert_eq!(back["status"], json!({}));
    }
}
