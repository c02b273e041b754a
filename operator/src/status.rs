//! The next status of an app, from the decision and the Deployment as
//! observed, computed with no I/O. Conditions keep their
//! `lastTransitionTime` while their status stays the same, so an unchanged
//! world yields an identical status, and the reconciler skips the write.

use k8s_openapi::api::apps::v1::Deployment;

use crate::autoscale::ReplicasOwner;
use crate::decide::Decision;
use crate::types::{ClusterAppStatus, Condition};

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

/// What the reconcile found.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// The children match the decision; `deployment` as last observed.
    Applied {
        decision: &'a Decision,
        selector: &'a str,
        deployment: Option<&'a Deployment>,
        /// With the HPA, the pods wanted are the Deployment's, not the
        /// decision's.
        replicas_owner: ReplicasOwner,
    },
    /// The spec cannot be turned into children.
    Invalid { reason: &'a str, message: &'a str },
}

/// The status after `outcome`, given the previous status, the app's
/// generation and the time now (RFC 3339) for new transitions.
pub fn next_status(
    previous: Option<&ClusterAppStatus>,
    generation: Option<i64>,
    outcome: Outcome<'_>,
    now: &str,
) -> ClusterAppStatus {
    let prev = previous.cloned().unwrap_or_default();
    let cond = |type_: &str, status: bool, reason: &str, message: String| {
        condition(&prev, type_, status, reason, message, generation, now)
    };
    match outcome {
        Outcome::Applied {
            decision,
            selector,
            deployment,
            replicas_owner,
        } => {
            let st = deployment.and_then(|d| d.status.as_ref());
            let want = match replicas_owner {
                ReplicasOwner::ClusterApp => decision.replicas,
                ReplicasOwner::HorizontalPodAutoscaler => deployment
                    .and_then(|d| d.spec.replicas)
                    .unwrap_or(decision.replicas),
            };
            let ready = st.and_then(|s| s.ready_replicas).unwrap_or(0);
            let updated = st.and_then(|s| s.updated_replicas).unwrap_or(0);
            let total = st.and_then(|s| s.replicas).unwrap_or(0);
            let dep_gen = deployment.and_then(|d| d.metadata.generation);
            let observed = st.and_then(|s| s.observed_generation);
            let caught_up = deployment.is_some() && dep_gen.is_some() && observed >= dep_gen;
            let rolled_out = caught_up && updated >= want && total == want;
            let is_ready = rolled_out && ready >= want;
            let (ready_reason, ready_msg) = if is_ready {
                (
                    "AllReplicasReady",
                    format!(
                        "{ready}/{want} pods ready, {} workers each",
                        decision.workers
                    ),
                )
            } else {
                ("ReplicasNotReady", format!("{ready}/{want} pods ready"))
            };
            let (prog_reason, prog_msg) = if rolled_out {
                (
                    "RolloutComplete",
                    format!("{want} pods run the current spec"),
                )
            } else {
                (
                    "RollingOut",
                    format!("{updated}/{want} pods updated to the current spec"),
                )
            };
            ClusterAppStatus {
                observed_generation: generation,
                mode: Some(decision.mode.as_str().to_owned()),
                scaling: Some(decision.scaling.as_str().to_owned()),
                replicas: Some(want),
                replicas_owner: Some(replicas_owner.as_str().to_owned()),
                ready_replicas: Some(ready),
                workers_per_pod: Some(decision.workers as i32),
                selector: Some(selector.to_owned()),
                reasons: decision.reasons.clone(),
                conditions: vec![
                    cond(READY, is_ready, ready_reason, ready_msg),
                    cond(PROGRESSING, !rolled_out, prog_reason, prog_msg),
                    cond(
                        DEGRADED,
                        false,
                        "ReconcileSucceeded",
                        "the Deployment and Service match the spec".to_owned(),
                    ),
                ],
            }
        }
        Outcome::Invalid { reason, message } => {
            // The children (if any) keep running as last applied: keep what
            // was said about them, and say why nothing new was applied.
            let ready = prev
                .conditions
                .iter()
                .find(|c| c.type_ == READY)
                .cloned()
                .unwrap_or_else(|| {
                    cond(
                        READY,
                        false,
                        "InvalidSpec",
                        "the spec is invalid".to_owned(),
                    )
                });
            ClusterAppStatus {
                observed_generation: generation,
                conditions: vec![
                    ready,
                    cond(PROGRESSING, false, "InvalidSpec", message.to_owned()),
                    cond(DEGRADED, true, reason, message.to_owned()),
                ],
                ..prev.clone()
            }
        }
    }
}

fn condition(
    prev: &ClusterAppStatus,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: &str,
) -> Condition {
    let status = if status { "True" } else { "False" };
    let last = prev
        .conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.to_owned());
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        last_transition_time: Some(last),
        observed_generation: generation,
    }
}

/// The condition of `type_`, if set.
pub fn find<'a>(status: Option<&'a ClusterAppStatus>, type_: &str) -> Option<&'a Condition> {
    status?.conditions.iter().find(|c| c.type_ == type_)
}
