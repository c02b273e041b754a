//! Wiring: the client, the caches, the controller and the HTTP server,
//! until the shutdown future resolves.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::runtime::{reflector, watcher, Controller, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use thiserror::Error;
use tokio::sync::watch;

use crate::backoff::{NoTriggerBackoff, WatchBackoff};
use crate::cli::Config;
use crate::desired::MANAGER;
use crate::leader::{Election, LeaderError, LeaseConfig};
use crate::metrics::Metrics;
use crate::reconcile::{error_policy, reconcile, Context};
use crate::server::{self, ServerError};
use crate::types::ClusterApp;

#[derive(Debug, Error)]
pub enum RunError {
    #[error(
        "cannot find a Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster): {0}"
    )]
    Config(#[source] kube::config::InferConfigError),
    #[error("cannot build a Kubernetes client for {apiserver}: {source}")]
    Client {
        apiserver: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("{source} (apiserver {apiserver})")]
    Leader {
        apiserver: String,
        #[source]
        source: LeaderError,
    },
    #[error("lost the leader lease")]
    LostLease,
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
/// lets running reconciles finish, releases the Lease (with leader
/// election) and stops the HTTP server.
///
/// With leader election, `/readyz` answers 200 for a standby too (it is
/// healthy and ready to take over; a 503 there would stall every rollout
/// of a two-replica Deployment), and says `standby` or `ok`; the
/// `corefit_operator_leader` gauge tells them apart for monitoring.
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
    let config = kube::Config::infer().await.map_err(RunError::Config)?;
    // Named here once: kube's own connect errors do not say where to.
    let apiserver = config.cluster_url.to_string();
    tracing::info!(%apiserver, "Kubernetes apiserver");
    let client = Client::try_from(config).map_err(|source| RunError::Client {
        apiserver: apiserver.clone(),
        source,
    })?;

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
    let (server_tx, server_rx) = (stop_tx.clone(), stop_rx.clone());
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutdown requested");
        let _ = stop_tx.send(true);
    });

    let result = match &cfg.lease {
        None => {
            metrics.leader.set(1);
            let mut stop = stop_rx;
            control(&client, &cfg, &metrics, &ready, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
            Ok(())
        }
        Some(lease) => lead(&client, &cfg, lease, &metrics, &ready, stop_rx)
            .await
            .map_err(|e| match e {
                LeadError::Leader(source) => RunError::Leader { apiserver, source },
                LeadError::LostLease => RunError::LostLease,
            }),
    };
    metrics.leader.set(0);
    ready.store(false, Ordering::Relaxed);
    drop(server_rx);
    let _ = server_tx.send(true);
    match server.await {
        Ok(r) => r?,
        Err(e) => tracing::warn!("HTTP server task ended abnormally: {e}"),
    }
    tracing::info!("stopped");
    result
}

/// Why leading ended in failure.
#[derive(Debug)]
enum LeadError {
    Leader(LeaderError),
    LostLease,
}

/// Waits for the Lease, reconciles while holding it; on shutdown releases
/// it, on losing it stops and fails (the process exits and restarts as a
/// standby with fresh caches).
async fn lead(
    client: &Client,
    cfg: &Config,
    lease: &LeaseConfig,
    metrics: &Metrics,
    ready: &Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), LeadError> {
    let election = Election::start(client.clone(), lease)
        .await
        .map_err(LeadError::Leader)?;
    tracing::info!(identity = %lease.identity, lease = %lease.name, namespace = %lease.namespace, "standby: waiting for the lease");
    ready.store(true, Ordering::Relaxed);
    let mut leading = election.leading();
    tokio::select! {
        _ = stop.wait_for(|s| *s) => {
            election.release().await;
            return Ok(());
        }
        r = leading.wait_for(|l| *l) => {
            if r.is_err() {
                election.release().await;
                return Err(LeadError::LostLease);
            }
        }
    }
    tracing::info!(identity = %lease.identity, "leader: reconciling");
    metrics.leader.set(1);
    let lost = Arc::new(AtomicBool::new(false));
    {
        let lost = lost.clone();
        let mut leading = leading.clone();
        control(client, cfg, metrics, ready, async move {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => {}
                _ = leading.wait_for(|l| !*l) => lost.store(true, Ordering::Relaxed),
            }
        })
        .await;
    }
    metrics.leader.set(0);
    election.release().await;
    if lost.load(Ordering::Relaxed) {
        tracing::error!("lost the lease: stopped reconciling");
        return Err(LeadError::LostLease);
    }
    Ok(())
}

/// The caches and the controller, until `stop` resolves.
async fn control(
    client: &Client,
    cfg: &Config,
    metrics: &Metrics,
    ready: &Arc<AtomicBool>,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let ns = cfg.namespace.as_deref();
    let owned =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"));
    // Each watch paces its own retries (a short WatchBackoff) and the
    // controller adds no backoff over them (NoTriggerBackoff): after an
    // apiserver outage every watch is back within seconds (see backoff.rs).
    let (apps, apps_writer) = reflector::store();
    let app_stream = reflector(
        apps_writer,
        watcher(api::<ClusterApp>(client, ns), watcher::Config::default()),
    )
    .backoff(WatchBackoff::default())
    .applied_objects();
    let (deployments, dep_writer) = reflector::store();
    let dep_stream = reflector(
        dep_writer,
        watcher(api::<Deployment>(client, ns), owned.clone()),
    )
    .backoff(WatchBackoff::default())
    .touched_objects();
    let (services, svc_writer) = reflector::store();
    let svc_stream = watcher(api::<Service>(client, ns), owned)
        .modify(|s| s.managed_fields_mut().clear())
        .reflect(svc_writer)
        .backoff(WatchBackoff::default())
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
    // A stop before the caches synced (no apiserver answers) ends the run
    // at once: kube-runtime's graceful shutdown waits for the caches first,
    // which would hold the stop until the kubelet's SIGKILL. Once synced,
    // the graceful shutdown finishes the reconciles in hand.
    let stop = stop.shared();
    let stop_unsynced = {
        let (stop, synced) = (stop.clone(), caches_rx.clone());
        async move {
            stop.await;
            if *synced.borrow() {
                std::future::pending::<()>().await;
            } else {
                tracing::info!("stopping before the caches synced: nothing to finish");
            }
        }
    };
    let controller = Controller::for_stream(app_stream, apps).trigger_backoff(NoTriggerBackoff);
    let ctx = Arc::new(Context::new(
        client.clone(),
        cfg.info.clone(),
        metrics.clone(),
        controller.store(),
        deployments,
        services,
        caches_rx,
    ));
    controller
        .owns_stream(dep_stream)
        .owns_stream(svc_stream)
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .take_until(stop_unsynced)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!("reconcile: {e}");
            }
        })
        .await;
}
