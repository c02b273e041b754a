//! A stand-in kubelet for tests against a control plane with no real
//! kubelet (none can run here: no container runtime). It registers a Node
//! with room for many pods and, for the pods the real kube-scheduler binds
//! to that Node in one namespace, writes what a kubelet would once the
//! containers started and passed their readiness probes: phase Running,
//! conditions Ready and ContainersReady, ready container statuses. No
//! container runs; only the status moves, through the pod status
//! subresource, so Deployments and ReplicaSets see ready pods as in a
//! cluster. This is the one mock in the end-to-end tests, and it replaces
//! only what cannot exist here.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::task::JoinHandle;

pub const NODE: &str = "corefit-test-node";

/// Registers the test Node (idempotent) with a Ready condition.
pub async fn register_node(client: &Client) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
    }))?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    let now = Timestamp::now().to_string();
    let status = json!({
        "status": {
            "capacity": {"cpu": "100000", "memory": "1000Ti", "pods": "100000"},
            "allocatable": {"cpu": "100000", "memory": "1000Ti", "pods": "100000"},
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "corefit test kubelet", "lastHeartbeatTime": now,
                "lastTransitionTime": now
            }],
            "nodeInfo": {
                "architecture": "amd64", "bootID": "", "containerRuntimeVersion": "none://0",
                "kernelVersion": "", "kubeProxyVersion": "v1.20.2", "kubeletVersion": "v1.20.2",
                "machineID": "", "operatingSystem": "linux", "osImage": "test", "systemUUID": ""
            }
        }
    });
    nodes
        .patch_status(NODE, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    // The apiserver taints new Nodes not-ready; the node lifecycle
    // controller (not run here) would lift the taint once the Node reports
    // Ready, as it now does.
    nodes
        .patch(
            NODE,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"taints": null}})),
        )
        .await?;
    Ok(())
}

/// Marks every pod bound to the test Node in `namespace` Running and
/// Ready, until the returned task is aborted.
pub fn run(client: Client, namespace: &str) -> JoinHandle<()> {
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    tokio::spawn(async move {
        let lp = ListParams::default().fields(&format!("spec.nodeName={NODE}"));
        loop {
            if let Ok(list) = pods.list(&lp).await {
                for pod in list.items {
                    if pod.metadata.deletion_timestamp.is_some() {
                        // The containers "stopped": finish the deletion,
                        // as a kubelet does.
                        let _ = pods
                            .delete(&pod.name_any(), &DeleteParams::default().grace_period(0))
                            .await;
                    } else if !is_ready(&pod) {
                        let _ = mark_ready(&pods, &pod).await;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn mark_ready(pods: &Api<Pod>, pod: &Pod) -> Result<(), kube::Error> {
    let now = Timestamp::now().to_string();
    let containers: Vec<_> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| {
            json!({
                "name": c.name, "ready": true, "started": true, "restartCount": 0,
                "image": c.image.clone().unwrap_or_default(), "imageID": "",
                "state": {"running": {"startedAt": now}}
            })
        })
        .collect();
    let cond = |t: &str| json!({"type": t, "status": "True", "lastTransitionTime": now});
    let status = json!({
        "status": {
            "phase": "Running",
            "startTime": now,
            "conditions": [cond("Initialized"), cond("PodScheduled"), cond("ContainersReady"), cond("Ready")],
            "containerStatuses": containers,
        }
    });
    pods.patch_status(
        &pod.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&status),
    )
    .await
    .map(|_| ())
}
