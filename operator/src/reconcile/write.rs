//! The writes of a reconcile, each only when the cluster does not already
//! hold what it would write; every one under the field manager
//! [`MANAGER`] and counted in the metrics.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Context, Error};
use crate::autoscale::HANDOVER_MANAGER;
use crate::compare::contains;
use crate::desired::MANAGER;
use crate::events::{self, Severity};
use crate::types::{ClusterApp, ClusterAppStatus};

/// Applies `desired` unless `observed` already holds all of it; returns
/// the object as it now is.
pub(super) async fn apply_if_needed<K>(
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
    patch_as(ctx, api, (kind, "apply"), name, MANAGER, &want).await
}

/// Hands `spec.replicas` (at its current value `n`) to
/// [`HANDOVER_MANAGER`], so the operator can stop applying it without the
/// apiserver removing it; the HPA then takes it over with its first scale.
pub(super) async fn hand_over_replicas(
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
    patch_as(
        ctx,
        api,
        ("Deployment", "handover"),
        name,
        HANDOVER_MANAGER,
        &body,
    )
    .await?;
    Ok(())
}

/// Server-side apply of `body` to `name` as field manager `manager`,
/// counted as a write of (kind, what).
async fn patch_as<K>(
    ctx: &Context,
    api: &Api<K>,
    (kind, what): (&'static str, &str),
    name: &str,
    manager: &str,
    body: &serde_json::Value,
) -> Result<K, Error>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    ctx.metrics.write(kind, what);
    api.patch(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(body),
    )
    .await
    .map_err(|source| Error::Apply {
        kind,
        name: name.to_owned(),
        source,
    })
}

/// A child that exists only for some specs (HPA, PDB), in the version
/// discovery chose.
pub(super) struct Optional<'a> {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub ns: &'a str,
    pub name: &'a str,
    pub owner_uid: &'a str,
}

/// Applies `want` unless the object already holds it; with no `want`,
/// deletes the object if this app controls it.
pub(super) async fn sync_optional(
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

pub(super) async fn patch_status_if_changed(
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
pub(super) async fn publish(
    ctx: &Context,
    app: &ClusterApp,
    severity: Severity,
    reason: &str,
    note: String,
) {
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
