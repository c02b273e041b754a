//! Which `autoscaling` and `policy` versions the cluster serves: the pure
//! choice ([`choose`]) over the apiserver's group list, and the fetch.
//! The reconciler caches the answer and forgets it when a write to one of
//! these kinds fails, so an upgraded cluster is picked up without a restart.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIGroupList;
use kube::Client;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DiscoveryError {
    #[error("API discovery failed: {0}")]
    Fetch(#[source] kube::Error),
    #[error("the cluster serves none of {0}")]
    NotServed(&'static str),
}

/// The versions to write HPAs and PDBs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersions {
    /// `autoscaling/v2` or `autoscaling/v2beta2`.
    pub hpa: &'static str,
    /// `policy/v1` or `policy/v1beta1`.
    pub pdb: &'static str,
}

/// Picks the newest served version of each kind.
pub fn choose(groups: &APIGroupList) -> Result<ApiVersions, DiscoveryError> {
    let served = |group: &str, version: &str| {
        groups
            .groups
            .iter()
            .filter(|g| g.name == group)
            .flat_map(|g| &g.versions)
            .any(|v| v.version == version)
    };
    let hpa = if served("autoscaling", "v2") {
        "autoscaling/v2"
    } else if served("autoscaling", "v2beta2") {
        "autoscaling/v2beta2"
    } else {
        return Err(DiscoveryError::NotServed(
            "autoscaling/v2, autoscaling/v2beta2",
        ));
    };
    let pdb = if served("policy", "v1") {
        "policy/v1"
    } else if served("policy", "v1beta1") {
        "policy/v1beta1"
    } else {
        return Err(DiscoveryError::NotServed("policy/v1, policy/v1beta1"));
    };
    Ok(ApiVersions { hpa, pdb })
}

/// Asks the apiserver (`GET /apis`).
pub async fn fetch(client: &Client) -> Result<ApiVersions, DiscoveryError> {
    let groups = client
        .list_api_groups()
        .await
        .map_err(DiscoveryError::Fetch)?;
    choose(&groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn groups(list: &[(&str, &[&str])]) -> APIGroupList {
        let groups: Vec<_> = list
            .iter()
            .map(|(name, versions)| {
                let vs: Vec<_> = versions
                    .iter()
                    .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
                    .collect();
                json!({"name": name, "versions": vs})
            })
            .collect();
        serde_json::from_value(json!({"groups": groups})).unwrap()
    }

    #[test]
    fn newest_served_version_wins() {
        // Kubernetes 1.20: no autoscaling/v2, no policy/v1.
        let old = groups(&[
            ("autoscaling", &["v1", "v2beta1", "v2beta2"]),
            ("policy", &["v1beta1"]),
        ]);
        assert_eq!(
            choose(&old).unwrap(),
            ApiVersions {
                hpa: "autoscaling/v2beta2",
                pdb: "policy/v1beta1"
            }
        );
        let new = groups(&[("autoscaling", &["v2", "v1"]), ("policy", &["v1"])]);
        assert_eq!(
            choose(&new).unwrap(),
            ApiVersions {
                hpa: "autoscaling/v2",
                pdb: "policy/v1"
            }
        );
        let e = choose(&groups(&[("autoscaling", &["v1"]), ("policy", &["v1"])])).unwrap_err();
        assert!(e.to_string().contains("autoscaling/v2beta2"), "{e}");
    }
}
