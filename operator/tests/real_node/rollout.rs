//! A rollout, a drain and an operator handover through real pods, under
//! one bounded load from inside the node's network (see `traffic.rs`):
//!
//! 1. a spec change rolls the pods with no failed request;
//! 2. the operator leading when the rollout starts is killed (SIGKILL) as
//!    soon as it has written the new Deployment: the standby takes the
//!    Lease and reports the rollout done, and no pod that should live is
//!    lost (the ready endpoints never fall below the replicas);
//! 3. `kubectl drain` of the node evicts one pod of two and no more: the
//!    PodDisruptionBudget the operator made (maxUnavailable 1) refuses the
//!    second eviction until the drain times out; after `uncordon` both run.

use std::time::{Duration, Instant};

use corefit_operator::types::ClusterApp;
use corefit_test_support::k8s::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::node::{node_namespace, real_node, DeleteNamespace, RealNode, NODE_LOCK};
use super::traffic::{Follower, Load};
use super::{ready_pods, APP_READY};

const LEASE_SECS: u64 = 6;
const APP: &str = "roll";

/// Uncordons the node when dropped, whatever happened to the drain.
struct Uncordon<'a>(&'a RealNode);

impl Drop for Uncordon<'_> {
    fn drop(&mut self) {
        let _ = self.0.kubectl("default", &["uncordon", &self.0.name]);
    }
}

fn env_of_pod(p: &Pod, name: &str) -> Option<String> {
    p.spec.as_ref()?.containers[0]
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
}

/// Ready for generation `gen`, the rollout complete.
async fn rolled_out(apps: &Api<ClusterApp>, gen: i64) -> bool {
    apps.get(APP).await.is_ok_and(|a| {
        a.status
            .as_ref()
            .is_some_and(|s| s.observed_generation == Some(gen))
            && condition(&a, "Ready").is_some_and(|c| c.0 == "True")
            && condition(&a, "Progressing")
                .is_some_and(|c| c.0 == "False" && c.1 == "RolloutComplete")
    })
}

pub async fn rollout_handover_and_drain() {
    let node = real_node();
    let client = client().await;
    install_crd(&client).await;
    node.ready(&client).await;
    let _node = NODE_LOCK.lock().await;
    let ns = node_namespace(&client, "roll").await;
    let _cleanup = DeleteNamespace(&node, ns.clone());
    let dir = std::env::temp_dir().join(format!("corefit-{ns}"));
    std::fs::create_dir_all(&dir).unwrap();
    let apps: Api<ClusterApp> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let t = Duration::from_secs(30);

    let (mut a, b) = Operator::leader_and_standby(&ns, LEASE_SECS).await;

    // 2 pods asking for no CPU (memory only: Horizontal needs no CPU
    // size): they and the rollout's surge pod fit beside whatever the
    // other test's pods hold of the node's 2 CPUs, even while those leave
    // (the kubelet takes 5 to 60 s to let a stopped pod leave the API).
    let app: ClusterApp = cluster_app(
        APP,
        json!({"image": "corefit/node-app:0.1.0", "command": ["node", "server.js"],
               "port": 8080, "env": [{"name": "ROLLOUT", "value": "1"}],
               "resources": {"memory": "256Mi"},
               "scaling": {"strategy": "Horizontal", "replicas": 2}}),
    );
    let t0 = Instant::now();
    apps.create(&PostParams::default(), &app).await.unwrap();
    wait_condition(&apps, APP, READY, APP_READY).await;
    let first = ready_pods(&pods, APP, &node.name, 2).await;
    eprintln!(
        "measure: {APP} (2 pods) Ready {:.1}s after create",
        t0.elapsed().as_secs_f64()
    );

    let follower = Follower::start(&client, &ns, APP, &dir);
    wait_until("2 ready endpoints", APP_READY, || async {
        follower.current().len() == 2
    })
    .await;
    let load = Load::start(&node, &follower, &dir, 2);
    load.wait_more(20).await;

    // 1 and 2: a spec change; op-a killed once it has written the new
    // Deployment, while the Deployment controller rolls the pods.
    follower.mark();
    let t0 = Instant::now();
    let patched = apps
        .patch(
            APP,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"env": [{"name": "ROLLOUT", "value": "2"}]}})),
        )
        .await
        .unwrap();
    let gen = patched.metadata.generation.expect("generation");
    wait_until("op-a writes the new Deployment", t, || async {
        deps.get(APP).await.is_ok_and(|d| {
            d.spec.template.spec.is_some_and(|s| {
                s.containers[0]
                    .env
                    .iter()
                    .flatten()
                    .any(|e| e.name == "ROLLOUT" && e.value.as_deref() == Some("2"))
            })
        })
    })
    .await;
    a.kill();
    let killed = Instant::now();
    assert!(
        !rolled_out(&apps, gen).await,
        "the rollout was over before op-a was killed: nothing left to hand over"
    );
    b.wait_leading("op-b", Duration::from_secs(LEASE_SECS + 10))
        .await;
    let takeover = killed.elapsed();
    wait_until("op-b reports the rollout done", APP_READY, || {
        rolled_out(&apps, gen)
    })
    .await;
    let rollout = t0.elapsed();
    let rolled = ready_pods(&pods, APP, &node.name, 2).await;
    for p in &rolled {
        assert_eq!(
            env_of_pod(p, "ROLLOUT").as_deref(),
            Some("2"),
            "{}",
            p.name_any()
        );
        assert!(
            first.iter().all(|f| f.uid() != p.uid()),
            "{} was not replaced",
            p.name_any()
        );
    }
    let fewest = follower.fewest();
    let mb = b.metrics().await;
    assert!(
        metric_sum(&mb, API_WRITES) >= 1.0,
        "op-b wrote nothing: {mb}"
    );
    let (ok, failed) = load.progress();
    eprintln!(
        "measure: rollout of 2 pods {:.1}s (op-a killed {:.1}s in, op-b led {:.1}s later); \
         fewest ready endpoints {fewest}; load so far {ok} answered, {failed} failed",
        rollout.as_secs_f64(),
        (killed - t0).as_secs_f64(),
        takeover.as_secs_f64()
    );
    assert_eq!(
        fewest, 2,
        "a pod that should live was lost during the rollout"
    );

    // 3: the PodDisruptionBudget against a drain.
    let allowed = || {
        let out = node.kubectl(
            &ns,
            &[
                "get",
                "pdb",
                APP,
                "-o",
                "jsonpath={.status.disruptionsAllowed}",
            ],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    wait_until("the PDB allows 1 disruption", t, || async {
        allowed() == "1"
    })
    .await;
    follower.mark();
    let _uncordon = Uncordon(&node);
    let t0 = Instant::now();
    // Only this app's pods: an earlier test's may still be leaving. (The
    // endpoint follower runs on meanwhile: kubectl blocks this thread only.)
    let selector = format!("--pod-selector=corefit.dev/app={APP}");
    let drain = [
        "drain",
        &node.name,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        &selector,
        "--timeout=8s",
    ];
    let out = tokio::task::block_in_place(|| node.kubectl(&ns, &drain));
    let drained = t0.elapsed();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "kubectl drain ({:.1}s, {}):\n{text}",
        drained.as_secs_f64(),
        out.status
    );
    assert!(
        !out.status.success(),
        "the drain went through the PDB:\n{text}"
    );
    // Of the two serving pods, one was evicted (deleted, its replacement
    // Pending on the cordoned node) and the other refused, still running.
    // (The drain also evicts the rollout's old pods still terminating.)
    let list = pods
        .list(&kube::api::ListParams::default().labels(&format!("corefit.dev/app={APP}")))
        .await
        .unwrap()
        .items;
    let kept: Vec<String> = rolled
        .iter()
        .filter(|r| {
            list.iter()
                .any(|p| p.uid() == r.uid() && p.metadata.deletion_timestamp.is_none())
        })
        .map(|p| p.name_any())
        .collect();
    assert_eq!(
        kept.len(),
        1,
        "the PDB kept one pod of two: {kept:?}\n{text}"
    );
    assert!(
        text.contains(&format!(
            "evicting pods/\"{}\" -n \"{ns}\" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget",
            kept[0]
        )),
        "{text}"
    );
    assert!(follower.fewest() >= 1, "the drain left no endpoint");
    drop(_uncordon);
    let schedulable = node.kubectl(
        "default",
        &[
            "get",
            "node",
            &node.name,
            "-o",
            "jsonpath={.spec.unschedulable}",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&schedulable.stdout).trim(),
        "",
        "uncordoned"
    );

    let summary = load.finish().await;
    eprintln!(
        "measure: drain refused after {:.1}s; load: {} answered, {} failed in {}s over {} addresses; failures {}",
        drained.as_secs_f64(),
        summary["ok"],
        summary["failed"],
        summary["seconds"],
        summary["by_addr"].as_object().map_or(0, |m| m.len()),
        summary["failures"]
    );
    assert_eq!(summary["failed"], 0, "failed requests: {summary}");
    // Old pods, new pods and the drain's replacement all answered.
    assert!(
        summary["by_addr"].as_object().is_some_and(|m| m.len() >= 4),
        "{summary}"
    );
    // The pods go with the namespace (DeleteNamespace), not awaited: the
    // kubelet takes 5 to 60 s to let a stopped pod leave the API.
    let _ = std::fs::remove_dir_all(&dir);
}
