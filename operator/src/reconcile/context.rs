//! What every reconcile shares.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::Client;
use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::decide::ClusterInfo;
use crate::discovery::{self, ApiVersions, DiscoveryError};
use crate::metrics::Metrics;
use crate::status::Written;
use crate::types::ClusterApp;

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

    pub(super) async fn api_versions(&self) -> Result<ApiVersions, DiscoveryError> {
        let cached = *self.versions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = cached {
            return Ok(v);
        }
        let v = discovery::fetch(&self.client).await?;
        tracing::info!(hpa = v.hpa, pdb = v.pdb, "API discovery");
        *self.versions.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
        Ok(v)
    }

    pub(super) fn forget_versions(&self) {
        *self.versions.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub(super) fn written(&self) -> std::sync::MutexGuard<'_, Written> {
        self.written.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn backoff(&self) -> std::sync::MutexGuard<'_, Backoff<ObjectRef<ClusterApp>>> {
        // A panic elsewhere while holding the lock leaves plain counters
        // behind: still usable.
        self.backoff.lock().unwrap_or_else(|p| p.into_inner())
    }
}
