//! One reconcile of one app: read the caches, compute what it should
//! have, write what differs, report a changed decision.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::write::{
    apply_if_needed, hand_over_replicas, patch_status_if_changed, publish, sync_optional, Optional,
};
use super::{Context, Error};
use crate::autoscale::{replicas_plan, ReplicasOwner, ReplicasPlan};
use crate::desired::{desired, DesiredError, MANAGER};
use crate::events::Severity;
use crate::status::{find, next_status, Outcome, DEGRADED};
use crate::types::{ClusterApp, ClusterAppStatus};

/// Reconciles one app.
pub async fn reconcile(app: Arc<ClusterApp>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciles.inc();
    let start = Instant::now();
    let result = reconcile_inner(&app, &ctx).await;
    ctx.metrics.duration.observe(start.elapsed().as_secs_f64());
    match &result {
        Ok(_) => ctx.backoff().succeed(&ObjectRef::from_obj(app.as_ref())),
        // Invalid specs have their own event (once per problem).
        Err(Error::InvalidSpec(_)) => {}
        Err(e) => {
            publish(
                &ctx,
                &app,
                Severity::Warning,
                e.metric_label(),
                e.to_string(),
            )
            .await
        }
    }
    result
}

/// Counts the failure and requeues the app after its backoff.
pub fn error_policy(app: Arc<ClusterApp>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.error(err.metric_label());
    let delay = ctx.backoff().fail(ObjectRef::from_obj(app.as_ref()));
    tracing::warn!(
        app = %app.name_any(),
        namespace = app.namespace().unwrap_or_default(),
        reason = err.metric_label(),
        retry_in = ?delay,
        "reconcile failed: {err}"
    );
    Action::requeue(delay)
}

async fn reconcile_inner(app: &ClusterApp, ctx: &Context) -> Result<Action, Error> {
    if app.metadata.deletion_timestamp.is_some() {
        // The garbage collector removes the children.
        return Ok(Action::await_change());
    }
    // Until the caches hold their first full list, "not in the cache"
    // would mean "unknown", not "missing": wait, so a restart writes nothing.
    ctx.caches_ready
        .clone()
        .wait_for(|ready| *ready)
        .await
        .map_err(|_| Error::CacheGone("Deployment/Service"))?;
    let name = app.name_any();
    let ns = app.namespace().unwrap_or_default();
    // The cache can lag behind our own status write; what we wrote last
    // for this object is the better "previous", so a quick second
    // reconcile neither repeats the event nor the write (see Written).
    let uid = app.uid().unwrap_or_default();
    let remembered = {
        let mut written = ctx.written();
        if written.len() > ctx.apps.len() {
            let live: std::collections::HashSet<String> =
                ctx.apps.state().iter().filter_map(|a| a.uid()).collect();
            written.retain(|u| live.contains(u));
        }
        written.previous(&uid, app.status.as_ref())
    };
    let previous = remembered.as_ref();
    let now = Timestamp::now().to_string();

    let want = match desired(app, &ctx.info) {
        Ok(d) => d,
        Err(DesiredError::Spec(e)) => {
            let message = e.to_string();
            let next = next_status(
                previous,
                app.metadata.generation,
                Outcome::Invalid {
                    reason: e.reason(),
                    message: &message,
                },
                &now,
            );
            let was = find(previous, DEGRADED);
            let news = was.is_none_or(|c| c.status != "True" || c.message != message);
            patch_status_if_changed(ctx, app, previous, &next).await?;
            if news {
                publish(ctx, app, Severity::Warning, "InvalidSpec", message).await;
            }
            return Err(Error::InvalidSpec(e));
        }
        Err(e) => return Err(Error::Metadata(e)),
    };

    let dep_ref = ObjectRef::<Deployment>::new(&name).within(&ns);
    let observed = ctx.deployments.get(&dep_ref);
    let dep_api = Api::<Deployment>::namespaced(ctx.client.clone(), &ns);
    let autoscaled = want.replicas_owner == ReplicasOwner::HorizontalPodAutoscaler;
    let mut dep_want = want.deployment.clone();
    let deployment = match replicas_plan(autoscaled, observed.as_deref(), MANAGER) {
        ReplicasPlan::Apply => {
            apply_if_needed(ctx, &dep_api, observed.as_deref(), &dep_want, &name).await?
        }
        ReplicasPlan::Omit => {
            dep_want.spec.replicas = None;
            apply_if_needed(ctx, &dep_api, observed.as_deref(), &dep_want, &name).await?
        }
        ReplicasPlan::HandOver(n) => {
            dep_want.spec.replicas = None;
            hand_over_replicas(ctx, &dep_api, &name, n).await?;
            apply_if_needed(ctx, &dep_api, None, &dep_want, &name).await?
        }
    };
    let svc_ref = ObjectRef::<Service>::new(&name).within(&ns);
    let observed = ctx.services.get(&svc_ref);
    apply_if_needed(
        ctx,
        &Api::<Service>::namespaced(ctx.client.clone(), &ns),
        observed.as_deref(),
        &want.service,
        &name,
    )
    .await?;

    let versions = match ctx.api_versions().await {
        Ok(v) => v,
        Err(e) => return Err(e.into()),
    };
    let hpa = want
        .hpa
        .as_ref()
        .map(|h| {
            serde_json::to_value(h).map_err(|e| Error::Serialize("HorizontalPodAutoscaler", e))
        })
        .transpose()?;
    let pdb = want
        .pdb
        .as_ref()
        .map(|p| serde_json::to_value(p).map_err(|e| Error::Serialize("PodDisruptionBudget", e)))
        .transpose()?;
    for (version, kind, plural, body) in [
        (
            versions.hpa,
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            hpa,
        ),
        (
            versions.pdb,
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            pdb,
        ),
    ] {
        let target = Optional {
            api_version: version,
            kind,
            plural,
            ns: &ns,
            name: &name,
            owner_uid: &uid,
        };
        if let Err(e) = sync_optional(ctx, &target, body).await {
            // Maybe the cluster changed under us: discover again next time.
            ctx.forget_versions();
            return Err(e);
        }
    }

    let next = next_status(
        previous,
        app.metadata.generation,
        Outcome::Applied {
            decision: &want.decision,
            selector: &want.selector,
            deployment: Some(&deployment),
            replicas_owner: want.replicas_owner,
        },
        &now,
    );
    // An HPA moving the replicas is not a decision of ours.
    let replicas_if_ours = |s: &ClusterAppStatus| {
        (s.replicas_owner.as_deref() != Some(ReplicasOwner::HorizontalPodAutoscaler.as_str()))
            .then_some(s.replicas)
    };
    let decision_changed = previous.is_none_or(|p| {
        (
            &p.mode,
            &p.workers_per_pod,
            &p.scaling,
            replicas_if_ours(p),
            &p.replicas_owner,
        ) != (
            &next.mode,
            &next.workers_per_pod,
            &next.scaling,
            replicas_if_ours(&next),
            &next.replicas_owner,
        )
    });
    patch_status_if_changed(ctx, app, previous, &next).await?;
    if decision_changed {
        let d = &want.decision;
        let note = format!(
            "{} ({}): {}",
            crate::decide::sizes(d.mode, d.workers, d.replicas),
            d.scaling.as_str(),
            // The line before the closing "decision:" one says why.
            d.reasons
                .iter()
                .rev()
                .nth(1)
                .map(String::as_str)
                .unwrap_or_default()
        );
        publish(ctx, app, Severity::Normal, "DecisionChanged", note).await;
    }
    Ok(Action::await_change())
}
