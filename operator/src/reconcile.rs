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

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;
use tokio::sync::watch;

use crate::autoscale::{replicas_plan, ReplicasOwner, ReplicasPlan, HANDOVER_MANAGER};
use crate::backoff::Backoff;
use crate::compare::contains;
use crate::decide::ClusterInfo;
use crate::desired::{desired, DesiredError, MANAGER};
use crate::discovery::{self, ApiVersions, DiscoveryError};
use crate::events::{self, Severity};
use crate::metrics::Metrics;
use crate::status::{find, next_status, Outcome, Written, DEGRADED};
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
    #[error("{kind} {name}: {source}")]
    Optional {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
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
            Error::Optional { .. } => "ApplyFailed",
            Error::Discovery(_) => "DiscoveryFailed",
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
    /// The statuses written and not yet seen in the cache.
    written: Mutex<Written>,
    /// The HPA and PDB versions the cluster serves, once discovered;
    /// forgotten when a write to either kind fails.
    versions: Mutex<Option<ApiVersions>>,
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
            versions: Mutex::default(),
        }
    }

    async fn api_versions(&self) -> Result<ApiVersions, DiscoveryError> {
        let cached = *self.versions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = cached {
            return Ok(v);
        }
        let v = discovery::fetch(&self.client).await?;
        tracing::info!(hpa = v.hpa, pdb = v.pdb, "API discovery");
        *self.versions.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
        Ok(v)
    }

    fn forget_versions(&self) {
        *self.versions.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn written(&self) -> std::sync::MutexGuard<'_, Written> {
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

/// Hands `spec.replicas` (at its current value `n`) to
/// [`HANDOVER_MANAGER`], so the operator can stop applying it without the
/// apiserver removing it; the HPA then takes it over with its first scale.
async fn hand_over_replicas(
    ctx: &Context,
    api: &Api<Deployment>,
    name: &str,
    n: i32,
) -> Result<(), Error> {
    let body = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": n},
    });
    ctx.metrics.write("Deployment", "handover");
    api.patch(
        name,
        &PatchParams::apply(HANDOVER_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|source| Error::Apply {
        kind: "Deployment",
        name: name.to_owned(),
        source,
    })?;
    Ok(())
}

/// A child that exists only for some specs (HPA, PDB), in the version
/// discovery chose.
struct Optional<'a> {
    api_version: &'static str,
    kind: &'static str,
    plural: &'static str,
    ns: &'a str,
    name: &'a str,
    owner_uid: &'a str,
}

/// Applies `want` unless the object already holds it; with no `want`,
/// deletes the object if this app controls it.
async fn sync_optional(
    ctx: &Context,
    t: &Optional<'_>,
    want: Option<serde_json::Value>,
) -> Result<(), Error> {
    let err = |source| Error::Optional {
        kind: t.kind,
        name: t.name.to_owned(),
        source,
    };
    let (group, version) = t.api_version.split_once('/').unwrap_or(("", t.api_version));
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, t.kind), t.plural);
    let api = Api::<DynamicObject>::namespaced_with(ctx.client.clone(), t.ns, &ar);
    let have = api.get_opt(t.name).await.map_err(err)?;
    match (want, have) {
        (Some(mut want), have) => {
            want["apiVersion"] = t.api_version.into();
            want["kind"] = t.kind.into();
            if let Some(have) = have {
                let have = serde_json::to_value(&have).map_err(|e| Error::Serialize(t.kind, e))?;
                if contains(&have, &want) {
                    return Ok(());
                }
            }
            ctx.metrics.write(t.kind, "apply");
            api.patch(
                t.name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&want),
            )
            .await
            .map_err(err)?;
        }
        (None, Some(have)) => {
            let ours = have
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == t.owner_uid && o.controller == Some(true));
            if ours {
                ctx.metrics.write(t.kind, "delete");
                api.delete(t.name, &DeleteParams::default())
                    .await
                    .map_err(err)?;
            }
        }
        (None, None) => {}
    }
    Ok(())
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
    match api
        .patch_status(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
    {
        Ok(_) => {
            ctx.written().remember(&app.uid().unwrap_or_default(), next);
            Ok(())
        }
        Err(source) => {
            ctx.written().forget(&app.uid().unwrap_or_default());
            Err(Error::Status { name, source })
        }
    }
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
