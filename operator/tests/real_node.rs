//! End-to-end through real pods: the real `corefit-operator` binary, the
//! real kube-apiserver 1.20.2 (tests/k8s/control-plane.sh) and a real node
//! (tests/k8s/node.sh: kubelet 1.20.2, containerd 1.6, runc) running the
//! images built here: the launcher image `corefit/corefit:0.1.0`, the
//! example app `corefit/node-app:0.1.0` and the Node base image with no
//! corefit in it (for `launcher.mode: InitContainer`).
//!
//! Each test namespace is pinned to the node (PodNodeSelector and
//! PodTolerationRestriction annotations; the node carries a taint no other
//! test tolerates). The node has 2 allocatable CPUs and the operator sets
//! requests equal to limits, so the examples, sized for production nodes,
//! run here within 2 CPUs at a time, scaled down where they ask for more
//! (see `fit`; each example states its requests); what is checked is what
//! the operator and the kubelet made of the size asked for.
//!
//! Pod traffic stays in the node's network namespace: the clients run
//! there (`ip netns exec`). Needs COREFIT_TEST_KUBECONFIG and the node's
//! exports (`eval "$(tests/k8s/node.sh start)"`); without them every test
//! fails (no skip).

use std::process::Output;
use std::time::{Duration, Instant};

use corefit_operator::types::ClusterApp;
use corefit_test_support::k8s::*;
use k8s_openapi::api::core::v1::{Endpoints, Pod};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{json, Value};

#[path = "real_node/node.rs"]
mod node;
#[path = "real_node/rollout.rs"]
mod rollout;
#[path = "real_node/traffic.rs"]
mod traffic;
use node::{node_namespace, real_node, DeleteNamespace, RealNode, NODE_LOCK};

const APP_READY: Duration = Duration::from_secs(180);
const PODS_GONE: Duration = Duration::from_secs(150);

/// An example from `examples/`, on an image built here and at a size that
/// fits the node (`spec` fields merged over the example's).
fn fit(file: &str, spec: Value) -> ClusterApp {
    let mut app: Value = example(file);
    let s = app["spec"].as_object_mut().expect("spec");
    for (k, v) in spec.as_object().expect("object") {
        s.insert(k.clone(), v.clone());
    }
    serde_json::from_value(app).expect("a ClusterApp")
}

/// The app's pods not being deleted: `n` of them, all Running and Ready
/// on the node.
async fn ready_pods(pods: &Api<Pod>, name: &str, node: &str, n: usize) -> Vec<Pod> {
    let lp = ListParams::default().labels(&format!("corefit.dev/app={name}"));
    wait_for(
        &format!("{n} Running and Ready pods of {name}"),
        APP_READY,
        || async {
            // Pods on their way out (scaled down) no longer count: the
            // kubelet takes 5 to 60 s to let them leave the API.
            let list: Vec<Pod> = pods
                .list(&lp)
                .await
                .ok()?
                .items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            let ok = list.len() == n
                && list.iter().all(|p| {
                    let st = p.status.as_ref();
                    p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
                        && st.and_then(|s| s.phase.as_deref()) == Some("Running")
                        && st.and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
                            cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        })
                });
            ok.then_some(list)
        },
    )
    .await
}

fn limit(pod: &Pod, resource: &str) -> String {
    pod.spec.as_ref().unwrap().containers[0]
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get(resource))
        .map(|q| q.0.clone())
        .unwrap_or_else(|| panic!("pod {} has no {resource} limit", pod.name_any()))
}

fn stdout(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Inside each pod, `corefit plan --json` sees the CPU quota and memory
/// limit the kubelet wrote into the container's cgroups, and reaches the
/// mode and workers the ClusterApp's status reports.
fn check_plans(node: &RealNode, ns: &str, pods: &[Pod], status: &Value) {
    for pod in pods {
        let name = pod.name_any();
        let exec = |cmd: &[&str]| {
            let mut args = vec!["exec", name.as_str(), "-c", "app", "--"];
            args.extend_from_slice(cmd);
            stdout(
                &node.kubectl(ns, &args),
                &format!("kubectl exec {name} -- {cmd:?}"),
            )
        };
        let quota: f64 = exec(&["cat", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"])
            .trim()
            .parse()
            .unwrap();
        let period: f64 = exec(&["cat", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"])
            .trim()
            .parse()
            .unwrap();
        let mem: f64 = exec(&["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"])
            .trim()
            .parse()
            .unwrap();
        // The pod's launcher: `corefit` on the image's PATH, or the copy
        // the init container made (launcher.mode: InitContainer).
        let corefit = pod.spec.as_ref().unwrap().containers[0]
            .command
            .as_ref()
            .and_then(|c| c.first())
            .cloned()
            .unwrap_or_else(|| "corefit".to_owned());
        let plan: Value = serde_json::from_str(&exec(&[&corefit, "plan", "--json"]))
            .unwrap_or_else(|e| panic!("corefit plan --json in {name}: {e}"));
        let d = &plan["decision"];
        eprintln!(
            "{name}: limits cpu {} memory {}; cgroup quota {quota}/{period}, memory {mem}; plan: {} x{} on {} CPUs, {} bytes",
            limit(pod, "cpu"), limit(pod, "memory"), d["mode"], d["workers"],
            d["effective_cpus"]["value"], d["memory"]["value"]
        );
        assert!(quota > 0.0, "{name}: the kubelet set no CPU quota");
        assert_eq!(
            d["effective_cpus"]["value"].as_f64(),
            Some(quota / period),
            "{name}: {d}"
        );
        assert_eq!(d["memory"]["value"].as_f64(), Some(mem), "{name}: {d}");
        assert_eq!(
            d["mode"], status["mode"],
            "{name}: plan {d}\nstatus {status}"
        );
        assert_eq!(
            d["workers"], status["workersPerPod"],
            "{name}: plan {d}\nstatus {status}"
        );
        assert_eq!(
            d["scaling"], status["scaling"],
            "{name}: plan {d}\nstatus {status}"
        );
    }
}

/// The Service's endpoints are the ready pods, and each answers from
/// inside the node's network with as many workers as decided.
async fn check_endpoints(
    client: &Client,
    node: &RealNode,
    ns: &str,
    name: &str,
    pods: &[Pod],
    workers: i64,
) {
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), ns);
    let addrs = wait_for(
        &format!("{} endpoints of Service {name}", pods.len()),
        APP_READY,
        || async {
            let e = eps.get(name).await.ok()?;
            let subset = e.subsets?.into_iter().next()?;
            let port = subset
                .ports?
                .into_iter()
                .find(|p| p.name.as_deref() != Some("corefit-admin"))?
                .port;
            let ips: Vec<String> = subset
                .addresses?
                .into_iter()
                .map(|a| format!("{}:{port}", a.ip))
                .collect();
            (ips.len() == pods.len()).then_some(ips)
        },
    )
    .await;
    let mut pod_ips: Vec<&str> = pods
        .iter()
        .map(|p| p.status.as_ref().unwrap().pod_ip.as_deref().unwrap())
        .collect();
    pod_ips.sort_unstable();
    let mut ep_ips: Vec<&str> = addrs.iter().map(|a| a.split(':').next().unwrap()).collect();
    ep_ips.sort_unstable();
    assert_eq!(ep_ips, pod_ips);
    let admin = pods[0].spec.as_ref().unwrap().containers[0]
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("corefit-admin"))
        .expect("admin port")
        .container_port;
    for addr in &addrs {
        let body = node
            .get(addr, "/")
            .unwrap_or_else(|| panic!("{name}: no answer from {addr} inside the node's network"));
        assert!(body.starts_with("hello from worker"), "{addr}: {body}");
        assert!(
            body.contains(&format!(" of {workers} ")),
            "{addr}: {body} (workers per pod {workers})"
        );
        let ip = addr.split(':').next().unwrap();
        let health: Value = serde_json::from_str(
            &node
                .get(&format!("{ip}:{admin}"), "/health")
                .expect("/health"),
        )
        .unwrap();
        assert_eq!(health["workers"]["desired"], workers, "{addr}: {health}");
        assert_eq!(health["workers"]["ready"], workers, "{addr}: {health}");
        // As many processes serve as decided: requests on fresh
        // connections reach every worker (bounded: 10 rounds of 8).
        let mut pids = std::collections::BTreeSet::new();
        for _ in 0..10 {
            pids.extend(node.pids_serving(addr, 8));
            if pids.len() >= workers as usize {
                break;
            }
        }
        assert_eq!(pids.len(), workers as usize, "{addr}: pids {pids:?}");
    }
}

/// Creates the app, waits for Ready with its pods Running, checks what
/// runs, and returns the pods and the time from create to Ready.
async fn run_example(
    client: &Client,
    node: &RealNode,
    ns: &str,
    app: ClusterApp,
    replicas: usize,
) -> (Vec<Pod>, Duration) {
    let name = app.name_any();
    let apps: Api<ClusterApp> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let t0 = Instant::now();
    apps.create(&PostParams::default(), &app)
        .await
        .expect("create");
    wait_condition(&apps, &name, READY, APP_READY).await;
    let took = t0.elapsed();
    let running = ready_pods(&pods, &name, &node.name, replicas).await;
    let a = apps.get(&name).await.unwrap();
    let status = serde_json::to_value(a.status.as_ref().unwrap()).unwrap();
    assert_eq!(status["readyReplicas"], replicas, "{status}");
    eprintln!(
        "{name}: Ready {:.1}s after create: {} x{} ({})",
        took.as_secs_f64(),
        status["mode"],
        status["workersPerPod"],
        status["scaling"]
    );
    check_plans(node, ns, &running, &status);
    let workers = status["workersPerPod"].as_i64().expect("workersPerPod");
    check_endpoints(client, node, ns, &name, &running, workers).await;
    (running, took)
}

/// Deleting the ClusterApp deletes its pods (through the Deployment the
/// garbage collector removes): each is stopped by the kubelet (its
/// containers terminated). Returns that time; the pods are then removed
/// from the API at once (grace period 0), for the next example's CPUs:
/// this kubelet (1.20) often lets a pod with a preStop hook leave only at
/// its next periodic sync, 30-60 s on (its second kill finds the container
/// already removed: "Failed killing the pod ... NotFound").
async fn delete_and_wait(client: &Client, ns: &str, name: &str) -> Duration {
    let apps: Api<ClusterApp> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let t0 = Instant::now();
    apps.delete(name, &DeleteParams::default())
        .await
        .expect("delete");
    let lp = ListParams::default().labels(&format!("corefit.dev/app={name}"));
    let stopped = |p: &Pod| {
        p.metadata.deletion_timestamp.is_some()
            && p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .all(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some()))
                })
    };
    wait_until(
        &format!("the pods of {name} stopped"),
        PODS_GONE,
        || async {
            pods.list(&lp)
                .await
                .is_ok_and(|l| l.items.iter().all(stopped))
        },
    )
    .await;
    let took = t0.elapsed();
    let _ = pods
        .delete_collection(
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::default()
            },
            &lp,
        )
        .await;
    wait_until(&format!("the pods of {name} gone"), PODS_GONE, || async {
        pods.list(&lp).await.is_ok_and(|l| l.items.is_empty())
    })
    .await;
    took
}

#[tokio::test(flavor = "multi_thread")]
async fn real_node_examples_run_as_decided() {
    // First (the other test takes the lock only once the node is Ready):
    // api below needs the node's 2 CPUs, free of any other test's pods.
    let _node = NODE_LOCK.lock().await;
    let node = real_node();
    let client = client().await;
    install_crd(&client).await;
    node.ready(&client).await;
    let ns = node_namespace(&client, "real").await;
    let _cleanup = DeleteNamespace(&node, ns.clone());
    let _op = Operator::start(&ns).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);

    // api-vertical.yaml asks for 2 pods of 4 CPUs; here 1 pod of 2 CPUs,
    // the whole node (cluster mode, 2 workers by CPU).
    let api = fit(
        "api-vertical.yaml",
        json!({"image": "corefit/node-app:0.1.0", "command": ["node", "server.js"],
               "resources": {"cpu": "2", "memory": "1Gi"},
               "scaling": {"strategy": "Vertical", "replicas": 1, "memoryPerWorker": "256Mi"}}),
    );
    let (_, took) = run_example(&client, &node, &ns, api, 1).await;
    eprintln!(
        "measure: api (1 pod, 2 workers) Ready {:.1}s after create",
        took.as_secs_f64()
    );
    // Deleting the ClusterApp deletes its pods (and frees the node).
    let gone = delete_and_wait(&client, &ns, "api").await;
    eprintln!(
        "measure: api's pods stopped {:.1}s after delete",
        gone.as_secs_f64()
    );

    // Side by side, 2 CPUs in all: web-horizontal.yaml as shipped (3 pods
    // of 500m), on the example app's image; and worker-auto.yaml
    // (launcher.mode: InitContainer), which asks for 2 to 6 pods of 2.5
    // CPUs, at its floor of 2 pods of 250m, on the Node base image, which
    // has no corefit: the init container copies it from the launcher image.
    let web = fit(
        "web-horizontal.yaml",
        json!({"image": "corefit/node-app:0.1.0", "command": ["node", "server.js"]}),
    );
    let jobs = fit(
        "worker-auto.yaml",
        json!({"image": "node:22-bookworm-slim", "command": ["node", "-e", HELLO],
               "resources": {"cpu": "250m", "memory": "1Gi"},
               "launcher": {"mode": "InitContainer", "image": "corefit/corefit:0.1.0", "adminPort": 9100}}),
    );
    let ((_, web_took), (jobs_pods, jobs_took)) = tokio::join!(
        run_example(&client, &node, &ns, web, 3),
        run_example(&client, &node, &ns, jobs, 2)
    );
    eprintln!(
        "measure: web (3 pods) Ready {:.1}s, jobs (InitContainer, 2 pods) {:.1}s after create",
        web_took.as_secs_f64(),
        jobs_took.as_secs_f64()
    );
    let init = &jobs_pods[0]
        .spec
        .as_ref()
        .unwrap()
        .init_containers
        .as_ref()
        .expect("an init container")[0];
    assert_eq!(init.image.as_deref(), Some("corefit/corefit:0.1.0"));

    // kubectl scale: the scale subresource changes the pods.
    let t0 = Instant::now();
    let out = node.kubectl(&ns, &["scale", "clusterapp/web", "--replicas=1"]);
    stdout(&out, "kubectl scale clusterapp/web --replicas=1");
    let left = ready_pods(&pods, "web", &node.name, 1).await;
    assert_eq!(left.len(), 1);
    eprintln!(
        "measure: web scaled 3 -> 1 pods in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    // The rest goes with the namespace. (A pod with an init container
    // leaves the API only once the kubelet's container garbage collection,
    // once a minute, has removed the exited init container: up to 60 s.)
}

/// A spec change rolls the pods with no failed request, a second operator
/// finishes the rollout the first was killed in, and the PDB holds against
/// `kubectl drain` (real_node/rollout.rs).
#[tokio::test(flavor = "multi_thread")]
async fn real_node_rollout_handover_and_drain() {
    rollout::rollout_handover_and_drain().await;
}

/// examples/node-app's server, for an image that holds only Node.
const HELLO: &str = "const w = process.env.COREFIT_WORKER_ID ?? '0'; \
    require('node:http').createServer((q, s) => s.end(`hello from worker ${w} of \
    ${process.env.COREFIT_WORKERS ?? 1} (pid ${process.pid})\\n`)).listen(Number(process.env.PORT), \
    () => process.send && process.send('ready'));";
