//! The edge: one reconcile of one `ClusterApp`. Everything it decides comes
//! from the pure [`crate::desired`] and [`crate::status`]; this module only
//! reads the caches, writes when something differs, and records events.
//!
//! Writes, all under the field manager [`MANAGER`]:
//! - the Deployment and the Service by server-side apply, only when the
//!   cached object does not already hold every field we would apply;
//! - the status by server-side apply on the status subresource, only when
//!   the computed status differs from the stored one;
//! - an event when the decision changes or the app turns Degraded (or its
//!   Degraded message changes).
//!
//! Failures go through [`error_policy`]: counted by reason, requeued with a
//! per-object [`Backoff`] that a success resets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;
use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::compare::contains;
use crate::decide::ClusterInfo;
use crate::desired::{desired, DesiredError, MANAGER};
use crate::events::{self, Severity};
use crate::metrics::Metrics;
use crate::status::{find, next_status, Outcome, DEGRADED};
use crate::types::{ClusterApp, ClusterAppStatus};
use crate::validate::SpecError;

#[derive(Debug, Error)]
pub enum Error {
    #[error("invalid spec: {0}")]
    InvalidSpec(#[source] SpecError),
    #[error("{0}")]
    Metadata(#[source] DesiredError),
    #[error("applying {kind} {name}: {source}")]
    Apply {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("patching the status of {name}: {source}")]
    Status {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("the {0} cache stopped")]
    CacheGone(&'static str),
    #[error("cannot serialize {0}: {1}")]
    Serialize(&'static str, #[source] serde_json::Error),
}

impl Error {
    /// The `reason` label of the error metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::InvalidSpec(e) => e.reason(),
            Error::Metadata(_) => "MissingMetadata",
            Error::Apply { .. } => "ApplyFailed",
            Error::Status { .. } => "StatusFailed",
            Error::CacheGone(_) => "CacheGone",
            Error::Serialize(..) => "SerializeFailed",
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub info: ClusterInfo,
    pub metrics: Metrics,
    /// The controller's own cache of apps (to forget deleted ones).
    pub apps: Store<ClusterApp>,
    pub deployments: Store<Deployment>,
    pub services: Store<Service>,
    /// True once both caches are filled (see [`crate::run`]).
    pub caches_ready: watch::Receiver<bool>,
    pub backoff: Mutex<Backoff<ObjectRef<ClusterApp>>>,
    /// The last status written per object uid.
    written: Mutex<HashMap<String, ClusterAppStatus>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("info", &self.info).finish()
    }
}

impl Context {
    pub fn new(
        client: Client,
        info: ClusterInfo,
        metrics: Metrics,
        apps: Store<ClusterApp>,
        deployments: Store<Deployment>,
        services: Store<Service>,
        caches_ready: watch::Receiver<bool>,
    ) -> Self {
        Context {
            client,
            info,
            metrics,
            apps,
            deployments,
            services,
            caches_ready,
            backoff: Mutex::new(Backoff::new(
                Duration::from_secs(2),
                Duration::from_secs(300),
            )),
            written: Mutex::default(),
        }
    }

    fn written(&self) -> std::sync::MutexGuard<'_, HashMap<String, ClusterAppStatus>> {
        self.written.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn backoff(&self) -> std::sync::MutexGuard<'_, Backoff<ObjectRef<ClusterApp>>> {
        // A panic elsewhere while holding the lock leaves plain counters
        // behind: still usable.
        self.backoff.lock().unwrap_or_else(|p| p.into_inner())
    }
}

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
    // for this generation of this object is the better "previous", so a
    // quick second reconcile neither repeats the event nor the write.
    let remembered = app.uid().and_then(|uid| {
        ctx.written()
            .get(&uid)
            .filter(|s| s.observed_generation == app.metadata.generation)
            .cloned()
    });
    let previous = remembered.as_ref().or(app.status.as_ref());
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
    let deployment = apply_if_needed(
        ctx,
        &Api::<Deployment>::namespaced(ctx.client.clone(), &ns),
        observed.as_deref(),
        &want.deployment,
        &name,
    )
    .await?;
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

    let next = next_status(
        previous,
        app.metadata.generation,
        Outcome::Applied {
            decision: &want.decision,
            selector: &want.selector,
            deployment: Some(&deployment),
        },
        &now,
    );
    let decision_changed = previous.is_none_or(|p| {
        (&p.mode, &p.workers_per_pod, &p.scaling, &p.replicas)
            != (
                &next.mode,
                &next.workers_per_pod,
                &next.scaling,
                &next.replicas,
            )
    });
    patch_status_if_changed(ctx, app, previous, &next).await?;
    if decision_changed {
        let d = &want.decision;
        let note = format!(
            "{} mode, {} worker{} per pod, {} replica{} ({}): {}",
            d.mode.as_str(),
            d.workers,
            if d.workers == 1 { "" } else { "s" },
            d.replicas,
            if d.replicas == 1 { "" } else { "s" },
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

/// Applies `desired` unless `observed` already holds all of it; returns
/// the object as it now is.
async fn apply_if_needed<K>(
    ctx: &Context,
    api: &Api<K>,
    observed: Option<&K>,
    desired: &K,
    name: &str,
) -> Result<K, Error>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let kind = kind_of::<K>();
    let want = serde_json::to_value(desired).map_err(|e| Error::Serialize(kind, e))?;
    if let Some(obs) = observed {
        let have = serde_json::to_value(obs).map_err(|e| Error::Serialize(kind, e))?;
        if contains(&have, &want) {
            return Ok(obs.clone());
        }
    }
    ctx.metrics.write(kind, "apply");
    api.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&want),
    )
    .await
    .map_err(|source| Error::Apply {
        kind,
        name: name.to_owned(),
        source,
    })
}

fn kind_of<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        "Deployment" => "Deployment",
        "Service" => "Service",
        _ => "Object",
    }
}

async fn patch_status_if_changed(
    ctx: &Context,
    app: &ClusterApp,
    previous: Option<&ClusterAppStatus>,
    next: &ClusterAppStatus,
) -> Result<(), Error> {
    if previous == Some(next) {
        return Ok(());
    }
    let name = app.name_any();
    let api =
        Api::<ClusterApp>::namespaced(ctx.client.clone(), &app.namespace().unwrap_or_default());
    let body = serde_json::json!({
        "apiVersion": ClusterApp::api_version(&()),
        "kind": ClusterApp::kind(&()),
        "status": next,
    });
    ctx.metrics.write("ClusterAppStatus", "apply");
    api.patch_status(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|source| Error::Status { name, source })?;
    Ok(())
}

/// Records an event; a failure to record is logged, never fatal.
async fn publish(ctx: &Context, app: &ClusterApp, severity: Severity, reason: &str, note: String) {
    let ev = events::event(
        &app.object_ref(&()),
        severity,
        reason,
        &note,
        MANAGER,
        Timestamp::now(),
    );
    ctx.metrics.write("Event", "create");
    if let Err(e) = events::publish(&ctx.client, &ev).await {
        ctx.metrics.error("EventFailed");
        tracing::warn!(app = %app.name_any(), "cannot record event {reason}: {e}");
    }
}
