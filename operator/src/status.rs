//! The next status of an app, from the decision and the Deployment as
//! observed, computed with no I/O. Conditions keep their
//! `lastTransitionTime` while their status stays the same, so an unchanged
//! world yields an identical status, and the reconciler skips the write.
//! [`Written`] remembers the statuses this process wrote until its cache
//! shows them.

use std::collections::HashMap;

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

/// The status this process wrote last for each app (by uid), kept only
/// until the cache shows it. The watch delivers our own status write a
/// moment after the write returns; a reconcile in between (a Deployment
/// status change, a requeue) would otherwise compare with the stale
/// cached status, write the same status again and repeat the
/// `DecisionChanged` event. Under load, and while the apiserver or etcd
/// recovers from a fault, that moment grows to seconds.
#[derive(Debug, Default)]
pub struct Written {
    by_uid: HashMap<String, ClusterAppStatus>,
}

impl Written {
    /// The status to compare the next one with: the one written last while
    /// the cache does not show it yet, else the cached one. Whatever the
    /// generation: after a spec change right behind the first reconcile
    /// (the cache showing the new spec but not yet the status written for
    /// the old one), the decision to compare with is still the one written.
    /// An entry the cache has caught up with is forgotten.
    pub fn previous(
        &mut self,
        uid: &str,
        cached: Option<&ClusterAppStatus>,
    ) -> Option<ClusterAppStatus> {
        match self.by_uid.get(uid) {
            Some(w) if cached != Some(w) => Some(w.clone()),
            Some(_) => {
                self.by_uid.remove(uid);
                cached.cloned()
            }
            None => cached.cloned(),
        }
    }

    /// After a successful write of `status`.
    pub fn remember(&mut self, uid: &str, status: &ClusterAppStatus) {
        self.by_uid.insert(uid.to_owned(), status.clone());
    }

    /// After a failed write: the status stored is the one remembered or
    /// the one that failed (a connection lost mid-write); the cache will
    /// tell, so it is the best guess again. (Keeping the entry could keep
    /// a status that did land from ever being corrected: the next status
    /// would equal the remembered one and be skipped.)
    pub fn forget(&mut self, uid: &str) {
        self.by_uid.remove(uid);
    }

    /// Keeps only the apps `live` still knows (an app deleted before its
    /// cache caught up would leave its entry behind).
    pub fn retain(&mut self, live: impl Fn(&str) -> bool) {
        self.by_uid.retain(|uid, _| live(uid));
    }

    pub fn len(&self) -> usize {
        self.by_uid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(generation: i64, mode: &str) -> ClusterAppStatus {
        ClusterAppStatus {
            observed_generation: Some(generation),
            mode: Some(mode.to_owned()),
            ..ClusterAppStatus::default()
        }
    }

    #[test]
    fn a_lagging_cache_is_overruled_until_it_catches_up() {
        let mut w = Written::default();
        let old = status(1, "single");
        let new = status(1, "cluster");
        // Nothing written yet: the cache.
        assert_eq!(w.previous("u", Some(&old)), Some(old.clone()));
        w.remember("u", &new);
        // The cache still shows the old status: what we wrote wins, so
        // the next reconcile sees no change (no second write, no second
        // event).
        assert_eq!(w.previous("u", Some(&old)), Some(new.clone()));
        assert_eq!(w.previous("u", None), Some(new.clone()));
        assert_eq!(w.len(), 1);
        // Caught up: the entry goes, the cache speaks again.
        assert_eq!(w.previous("u", Some(&new)), Some(new.clone()));
        assert!(w.is_empty());
        // So a later change of the stored status by someone else is seen.
        assert_eq!(w.previous("u", Some(&old)), Some(old));
    }

    /// Seen in operator/tests/faults.rs: an app created and changed at
    /// once got a second `DecisionChanged` event for the same decision
    /// when the reconcile of its new generation saw the cache without the
    /// status written for the first one.
    #[test]
    fn the_status_written_for_the_last_generation_still_counts() {
        let mut w = Written::default();
        let written = status(1, "cluster");
        w.remember("u", &written);
        // The cache has the new spec (generation 2) but no status yet.
        assert_eq!(w.previous("u", None), Some(written));
    }

    #[test]
    fn a_failed_write_falls_back_to_the_cache() {
        let mut w = Written::default();
        let cached = status(1, "single");
        w.remember("u", &status(1, "cluster"));
        w.forget("u");
        assert_eq!(w.previous("u", Some(&cached)), Some(cached));
    }

    #[test]
    fn deleted_apps_are_pruned() {
        let mut w = Written::default();
        w.remember("a", &status(1, "single"));
        w.remember("b", &status(1, "single"));
        w.retain(|uid| uid == "a");
        assert_eq!(w.len(), 1);
        assert!(w.previous("b", None).is_none());
    }
}
