//! Leader election with two real `corefit-operator` processes against the
//! real kube-apiserver 1.20.2: one leads and writes, the other writes
//! nothing; SIGKILL of the leader hands over within the lease duration
//! and reconciling continues; SIGTERM releases the Lease at once.
//!
//! Needs COREFIT_TEST_KUBECONFIG; without it the test fails (no skip).

use std::time::{Duration, Instant};

use corefit_operator::types::ClusterApp;
use corefit_test_support::k8s::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::PostParams;
use kube::Api;
use serde_json::json;

const LEASE_SECS: u64 = 6;

fn app(name: &str) -> ClusterApp {
    cluster_app(name, json!({"image": "x:1"}))
}

async fn candidate(ns: &str, identity: &str) -> Operator {
    Operator::candidate(ns, identity, LEASE_SECS).await
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("corefit-operator")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

#[tokio::test(flavor = "multi_thread")]
async fn one_leader_hands_over_on_kill_and_releases_on_sigterm() {
    let (client, ns) = setup("leader").await;
    let apps: Api<ClusterApp> = Api::namespaced(client.clone(), &ns);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let t = Duration::from_secs(30);

    let (mut a, mut b) = Operator::leader_and_standby(&ns, LEASE_SECS).await;
    assert_eq!(holder(&leases).await.as_deref(), Some("op-a"));

    apps.create(&PostParams::default(), &app("one"))
        .await
        .unwrap();
    wait_until("Deployment one", t, || async {
        deps.get_opt("one").await.ok().flatten().is_some()
    })
    .await;
    // A few seconds of both running: the standby reconciles and writes
    // nothing, and stays a standby.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (ma, mb) = (a.metrics().await, b.metrics().await);
    assert!(metric_value(&ma, RECONCILES) >= 1.0, "{ma}");
    assert!(metric_sum(&ma, API_WRITES) >= 1.0, "{ma}");
    assert_eq!(metric_value(&mb, RECONCILES), 0.0, "{mb}");
    assert_eq!(metric_sum(&mb, API_WRITES), 0.0, "{mb}");
    assert_eq!(metric_value(&mb, LEADER), 0.0, "{mb}");
    let (code, body) = http_get(&b.addr, "/readyz").await.unwrap();
    assert_eq!((code, body.as_str()), (200, "standby"));
    assert_eq!(holder(&leases).await.as_deref(), Some("op-a"));

    // SIGKILL the leader: no release. op-b takes over within the lease
    // duration (plus the crate's up-to-1 s jitter and a second of slack)
    // and reconciles an app created after the kill.
    a.kill();
    let killed = Instant::now();
    apps.create(&PostParams::default(), &app("two"))
        .await
        .unwrap();
    b.wait_leading("op-b", Duration::from_secs(LEASE_SECS + 10))
        .await;
    let takeover = killed.elapsed();
    wait_until("Deployment two, made by op-b", t, || async {
        deps.get_opt("two").await.ok().flatten().is_some()
    })
    .await;
    let reconciled = killed.elapsed();
    eprintln!("takeover after SIGKILL: {takeover:?}; new app reconciled after {reconciled:?}");
    assert!(
        takeover <= Duration::from_secs(LEASE_SECS + 2),
        "takeover took {takeover:?}, lease is {LEASE_SECS}s"
    );
    assert_eq!(holder(&leases).await.as_deref(), Some("op-b"));
    assert!(b.metric(RECONCILES).await >= 2.0);
    let (code, body) = http_get(&b.addr, "/readyz").await.unwrap();
    assert_eq!((code, body.as_str()), (200, "ok"));

    // SIGTERM the leader: clean exit, holder cleared at once, and a new
    // candidate takes the free lease without waiting for expiry.
    let status = b.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}\n{}", b.log_text());
    assert_eq!(holder(&leases).await, None, "SIGTERM left the lease held");
    let released = Instant::now();
    let c = candidate(&ns, "op-c").await;
    wait_until("op-c leads", Duration::from_secs(5), || async {
        c.metric(LEADER).await == 1.0
    })
    .await;
    eprintln!("new leader after release: {:?}", released.elapsed());
    assert!(released.elapsed() < Duration::from_secs(LEASE_SECS));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_that_loses_the_lease_stops_and_exits() {
    let (client, ns) = setup("lost").await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let mut a = candidate(&ns, "op-a").await;
    wait_until("op-a leads", Duration::from_secs(30), || async {
        a.metric(LEADER).await == 1.0
    })
    .await;
    // Someone else takes the Lease (as a partitioned leader would find it
    // after its renewals failed): op-a notices at its next renewal, stops
    // reconciling and exits 1 instead of carrying on as a second leader.
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        k8s_openapi::jiff::Timestamp::now(),
    );
    leases
        .patch(
            "corefit-operator",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {
                "holderIdentity": "intruder", "renewTime": now, "leaseDurationSeconds": 60
            }})),
        )
        .await
        .unwrap();
    let start = Instant::now();
    wait_until(
        "op-a exits after losing the lease",
        Duration::from_secs(LEASE_SECS + 5),
        || {
            let alive = a.alive();
            async move { !alive }
        },
    )
    .await;
    eprintln!(
        "leader stopped {:?} after losing the lease",
        start.elapsed()
    );
    assert_eq!(a.exited().and_then(|s| s.code()), Some(1));
    assert!(a.log_text().contains("lost the lease"), "{}", a.log_text());
    assert_eq!(holder(&leases).await.as_deref(), Some("intruder"));
}
