//! Autoscaler, disruption budget and who owns the replica count, computed
//! with no I/O.
//!
//! The HPA targets the app's **Deployment** (`apps/v1`), not the
//! ClusterApp's scale subresource: the pods it counts are the same (the
//! Deployment's selector is the app's selector), but scaling then needs
//! neither the operator nor its status to be up to date: during a leader
//! hand-over or an operator outage the HPA keeps scaling. With autoscaling
//! on, the operator leaves `spec.replicas` out of its server-side apply so
//! the HPA's value stays; [`replicas_plan`] says how to get there without
//! the apiserver resetting the field to 1 (the "hand over to the HPA" step
//! of the Kubernetes server-side apply docs).
//!
//! The objects are built with the newest typed structs (`autoscaling/v2`,
//! `policy/v1`); the fields used here are identical in `autoscaling/v2beta2`
//! and `policy/v1beta1`, so the reconciler only swaps `apiVersion` to what
//! [`crate::discovery`] found served.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::types::Autoscaling;

/// The field manager that briefly holds `spec.replicas` while it is handed
/// from the operator to the HPA.
pub const HANDOVER_MANAGER: &str = "corefit-operator-handover";

/// Who sets the Deployment's `spec.replicas` (shown as
/// `status.replicasOwner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicasOwner {
    ClusterApp,
    HorizontalPodAutoscaler,
}

impl ReplicasOwner {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicasOwner::ClusterApp => "ClusterApp",
            ReplicasOwner::HorizontalPodAutoscaler => "HorizontalPodAutoscaler",
        }
    }
}

/// The HPA for an app, scaling its Deployment on average CPU utilization.
pub fn hpa(meta: &ObjectMeta, deployment: &str, a: &Autoscaling) -> HorizontalPodAutoscaler {
    HorizontalPodAutoscaler {
        metadata: meta.clone(),
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_owned()),
                kind: "Deployment".to_owned(),
                name: deployment.to_owned(),
            },
            min_replicas: Some(a.min_replicas),
            max_replicas: a.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".to_owned(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".to_owned(),
                    target: MetricTarget {
                        type_: "Utilization".to_owned(),
                        average_utilization: Some(a.target_cpu_utilization_percentage),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            ..HorizontalPodAutoscalerSpec::default()
        },
        ..HorizontalPodAutoscaler::default()
    }
}

/// The fewest pods the app runs: autoscaling's minimum, else its replicas.
pub fn floor_replicas(replicas: i32, autoscaling: Option<&Autoscaling>) -> i32 {
    autoscaling.map_or(replicas, |a| a.min_replicas)
}

/// A budget allowing one voluntary disruption at a time, only when the
/// app never runs fewer than 2 pods (with 1 pod, any budget either blocks
/// node drains forever or protects nothing).
pub fn pdb(
    meta: &ObjectMeta,
    selector: &BTreeMap<String, String>,
    floor: i32,
) -> Option<PodDisruptionBudget> {
    (floor >= 2).then(|| PodDisruptionBudget {
        metadata: meta.clone(),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}

/// How the reconciler treats the Deployment's `spec.replicas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicasPlan {
    /// Apply it (no autoscaling; or a new Deployment, created at the
    /// autoscaling minimum).
    Apply,
    /// Leave it out: the HPA owns it.
    Omit,
    /// The operator still owns it: first apply `spec.replicas = n` (the
    /// current value) under [`HANDOVER_MANAGER`], then apply without it,
    /// even if nothing else differs, so the operator lets go of the field
    /// without the apiserver removing it (which would reset it to 1).
    HandOver(i32),
}

/// Decides [`ReplicasPlan`] from the spec and the Deployment as observed.
pub fn replicas_plan(
    autoscaling: bool,
    observed: Option<&Deployment>,
    manager: &str,
) -> ReplicasPlan {
    let Some(dep) = observed.filter(|_| autoscaling) else {
        return ReplicasPlan::Apply;
    };
    if owns_replicas(dep, manager) {
        ReplicasPlan::HandOver(dep.spec.replicas.unwrap_or(1))
    } else {
        ReplicasPlan::Omit
    }
}

/// Does `manager` own `spec.replicas` by a server-side apply?
pub fn owns_replicas(dep: &Deployment, manager: &str) -> bool {
    dep.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.manager.as_deref() == Some(manager))
        .filter(|m| m.operation.as_deref() == Some("Apply"))
        .filter_map(|m| m.fields_v1.as_ref())
        .any(|f| {
            f.0.get("f:spec")
                .and_then(|s| s.get("f:replicas"))
                .is_some()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dep(fields: serde_json::Value, replicas: i32) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "a", "managedFields": fields},
            "spec": {"replicas": replicas, "selector": {}, "template": {}}
        }))
        .unwrap()
    }

    #[test]
    fn replicas_are_handed_over_once_then_omitted() {
        let ours = json!([{"manager": "corefit-operator", "operation": "Apply",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {}}}}]);
        let hpas = json!([
            {"manager": "corefit-operator", "operation": "Apply", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:spec": {"f:template": {}}}},
            {"manager": "kube-controller-manager", "operation": "Update", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:spec": {"f:replicas": {}}}}]);
        let m = "corefit-operator";
        assert_eq!(
            replicas_plan(false, Some(&dep(ours.clone(), 3)), m),
            ReplicasPlan::Apply
        );
        assert_eq!(replicas_plan(true, None, m), ReplicasPlan::Apply);
        assert_eq!(
            replicas_plan(true, Some(&dep(ours, 3)), m),
            ReplicasPlan::HandOver(3)
        );
        assert_eq!(
            replicas_plan(true, Some(&dep(hpas, 4)), m),
            ReplicasPlan::Omit
        );
    }

    #[test]
    fn budget_only_from_two_pods() {
        let sel = BTreeMap::from([("k".to_owned(), "v".to_owned())]);
        let meta = ObjectMeta::default();
        assert!(pdb(&meta, &sel, 1).is_none());
        let p = pdb(&meta, &sel, 2).unwrap().spec.unwrap();
        assert_eq!(p.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(p.selector.unwrap().match_labels, Some(sel));
        let a = Autoscaling {
            min_replicas: 2,
            max_replicas: 5,
            target_cpu_utilization_percentage: 70,
        };
        assert_eq!(floor_replicas(1, Some(&a)), 2);
        assert_eq!(floor_replicas(1, None), 1);
    }

    #[test]
    fn hpa_targets_the_deployment_on_cpu() {
        let a = Autoscaling {
            min_replicas: 2,
            max_replicas: 5,
            target_cpu_utilization_percentage: 70,
        };
        let v = serde_json::to_value(hpa(&ObjectMeta::default(), "web", &a)).unwrap();
        assert_eq!(
            v["spec"],
            json!({
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2, "maxReplicas": 5,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 70}}}]
            })
        );
    }
}
