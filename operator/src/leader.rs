//! Leader election on a `coordination.k8s.io/v1` Lease, through the
//! `kube-lease-manager` crate (server-side apply on the Lease, so two
//! candidates can never both take it).
//!
//! ```text
//!  start ─▶ standby ──lease free or expired──▶ leader ──SIGTERM──▶ release, exit 0
//!              ▲                                  │
//!              └──── (a new process) ◀── lease lost: stop reconciling, exit 1
//! ```
//!
//! The holder renews `grace` seconds before the lease runs out; a standby
//! sleeps until the lease would expire and then takes it, so a leader that
//! dies without releasing is replaced within one lease duration (plus up
//! to a second of jitter). A leader that loses the lease stops reconciling
//! at once and exits, so its replacement starts from fresh caches.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseCreateMode, LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, Error)]
pub enum LeaderError {
    #[error("cannot use Lease {namespace}/{name}: {source}")]
    Lease {
        namespace: String,
        name: String,
        #[source]
        source: LeaseManagerError,
    },
}

/// Where the Lease lives and who this candidate is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    /// Seconds a lease stays valid after its last renewal.
    pub duration_secs: u64,
}

impl LeaseConfig {
    /// Seconds before expiry at which the holder renews: a third of the
    /// duration, at least 1, always below the duration.
    pub fn grace_secs(&self) -> u64 {
        (self.duration_secs / 3).clamp(1, self.duration_secs.saturating_sub(1).max(1))
    }
}

/// A running candidate.
#[derive(Debug)]
pub struct Election {
    manager: Arc<LeaseManager>,
    task: JoinHandle<()>,
    leading: watch::Receiver<bool>,
}

impl Election {
    /// Creates the Lease if missing and starts campaigning.
    pub async fn start(client: Client, cfg: &LeaseConfig) -> Result<Election, LeaderError> {
        let err = |source| LeaderError::Lease {
            namespace: cfg.namespace.clone(),
            name: cfg.name.clone(),
            source,
        };
        let manager = LeaseManagerBuilder::new(client, &cfg.name)
            .with_namespace(&cfg.namespace)
            .with_identity(&cfg.identity)
            .with_duration(cfg.duration_secs)
            .with_grace(cfg.grace_secs())
            .with_field_manager(format!("corefit-operator-lease-{}", cfg.identity))
            .with_create_mode(LeaseCreateMode::AutoCreate)
            .build()
            .await
            .map_err(err)?;
        let manager = Arc::new(manager);
        let (tx, leading) = watch::channel(false);
        let task = {
            let manager = manager.clone();
            tokio::spawn(async move {
                loop {
                    match manager.changed().await {
                        Ok(lead) => {
                            tracing::info!(leader = lead, "lease state changed");
                            if tx.send(lead).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            // Unknown: no longer sure to lead.
                            tracing::warn!("lease: {e}");
                            let _ = tx.send(false);
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            })
        };
        Ok(Election {
            manager,
            task,
            leading,
        })
    }

    /// True while this process holds the Lease.
    pub fn leading(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    /// Stops campaigning and clears the holder if it is this process.
    pub async fn release(self) {
        self.task.abort();
        let _ = self.task.await;
        match self.manager.release().await {
            Ok(()) => tracing::info!("lease released"),
            Err(e) => tracing::warn!("cannot release the lease: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_is_a_third_and_below_the_duration() {
        let c = |d| LeaseConfig {
            name: "l".into(),
            namespace: "n".into(),
            identity: "i".into(),
            duration_secs: d,
        };
        assert_eq!(c(15).grace_secs(), 5);
        assert_eq!(c(2).grace_secs(), 1);
        assert_eq!(c(1).grace_secs(), 1);
        assert_eq!(c(60).grace_secs(), 20);
    }
}
