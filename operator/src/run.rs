//! Wiring: the client, the caches, the controller and the HTTP server,
//! until the shutdown future resolves.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::runtime::{reflector, watcher, Controller, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use thiserror::Error;
use tokio::sync::watch;

use crate::cli::Config;
use crate::desired::MANAGER;
use crate::metrics::Metrics;
use crate::reconcile::{error_policy, reconcile, Context};
use crate::server::{self, ServerError};
use crate::types::ClusterApp;

#[derive(Debug, Error)]
pub enum RunError {
    #[error("cannot build a Kubernetes client (KUBECONFIG or in-cluster config): {0}")]
    Client(#[source] kube::Error),
    #[error(transparent)]
    Server(#[from] ServerError),
}

fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the operator until `shutdown` resolves, then stops reconciling,
/// lets running reconciles finish, and stops the HTTP server.
pub async fn run(
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let metrics = Metrics::new();
    let ready = Arc::new(AtomicBool::new(false));
    let listener = server::bind(cfg.metrics_addr).await?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics /healthz /readyz");
    }
    let client = Client::try_default().await.map_err(RunError::Client)?;
    let ns = cfg.namespace.as_deref();

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut server_stop = stop_rx.clone();
    let server = tokio::spawn(server::serve(
        listener,
        metrics.clone(),
        ready.clone(),
        async move {
            let _ = server_stop.wait_for(|s| *s).await;
        },
    ));

    let owned =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"));
    let (deployments, dep_writer) = reflector::store();
    let dep_stream = reflector(
        dep_writer,
        watcher(api::<Deployment>(&client, ns), owned.clone()),
    )
    .default_backoff()
    .touched_objects();
    let (services, svc_writer) = reflector::store();
    let svc_stream = watcher(api::<Service>(&client, ns), owned)
        .modify(|s| s.managed_fields_mut().clear())
        .reflect(svc_writer)
        .default_backoff()
        .touched_objects();

    // kube-runtime's Store::wait_until_ready wakes only one of several
    // concurrent waiters, so exactly one task waits on each cache and
    // publishes readiness on a channel that every reconcile can wait on.
    let (caches_tx, caches_rx) = watch::channel(false);
    {
        let ready = ready.clone();
        let (deployments, services) = (deployments.clone(), services.clone());
        tokio::spawn(async move {
            if deployments.wait_until_ready().await.is_ok()
                && services.wait_until_ready().await.is_ok()
            {
                let _ = caches_tx.send(true);
                ready.store(true, Ordering::Relaxed);
                tracing::info!("caches synced: ready");
            }
        });
    }
    let controller = Controller::new(api::<ClusterApp>(&client, ns), watcher::Config::default());
    let ctx = Arc::new(Context::new(
        client.clone(),
        cfg.info.clone(),
        metrics.clone(),
        controller.store(),
        deployments,
        services,
        caches_rx,
    ));
    let mut ctl_stop = stop_rx;
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutdown requested");
        let _ = stop_tx.send(true);
    });
    controller
        .owns_stream(dep_stream)
        .owns_stream(svc_stream)
        .graceful_shutdown_on(async move {
            let _ = ctl_stop.wait_for(|s| *s).await;
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!("reconcile: {e}");
            }
        })
        .await;
    ready.store(false, Ordering::Relaxed);
    match server.await {
        Ok(r) => r?,
        Err(e) => tracing::warn!("HTTP server task ended abnormally: {e}"),
    }
    tracing::info!("stopped");
    Ok(())
}
