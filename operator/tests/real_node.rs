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
//! run here one at a time and scaled down (see `fit`), each to the size
//! stated beside it; what is checked is what the operator and the kubelet
//! made of that size.
//!
//! Pod traffic stays in the node's network namespace: the clients run
//! there (`ip netns exec`). Needs COREFIT_TEST_KUBECONFIG and the node's
//! exports (`eval "$(tests/k8s/node.sh start)"`); without them every test
//! fails (no skip).

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use corefit_operator::types::ClusterApp;
use corefit_test_support::k8s::*;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{json, Value};

/// tests/k8s/run-operator-tests.sh starts the node while the other
/// operator tests run: it may still be on its way up.
const NODE_READY: Duration = Duration::from_secs(300);
const APP_READY: Duration = Duration::from_secs(180);
const PODS_GONE: Duration = Duration::from_secs(150);

/// The node's exports (tests/k8s/node.sh env).
struct RealNode {
    netns: String,
    name: String,
    kubectl: String,
    logs: String,
}

fn real_node() -> RealNode {
    let var = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| {
            panic!(
                "{k} is not set: these tests need the real node. Run \
                 eval \"$(tests/k8s/control-plane.sh start)\"; eval \"$(tests/k8s/node.sh start)\""
            )
        })
    };
    RealNode {
        netns: var("COREFIT_TEST_NODE_NETNS"),
        name: var("COREFIT_TEST_NODE_NAME"),
        kubectl: var("COREFIT_TEST_KUBECTL"),
        logs: var("COREFIT_TEST_NODE_LOGS"),
    }
}

impl RealNode {
    fn kubectl(&self, ns: &str, args: &[&str]) -> Output {
        Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(kubeconfig_path())
            .args(["--request-timeout=30s", "-n", ns])
            .args(args)
            .output()
            .expect("kubectl runs")
    }

    /// A command in the node's network namespace, where the pods are.
    fn inside(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .args(args)
            .output()
            .expect("ip netns exec runs")
    }

    /// GET http://ADDR/PATH from inside the node's network.
    fn get(&self, addr: &str, path: &str) -> Option<String> {
        let out = self.inside(&[
            "curl",
            "-sf",
            "--max-time",
            "5",
            &format!("http://{addr}{path}"),
        ]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    async fn ready(&self, client: &Client) {
        let nodes: Api<Node> = Api::all(client.clone());
        let what = format!(
            "Node {} Ready and schedulable (node logs: {})",
            self.name, self.logs
        );
        wait_until(&what, NODE_READY, || async {
            let Ok(n) = nodes.get(&self.name).await else {
                return false;
            };
            let ready = n
                .status
                .and_then(|s| s.conditions)
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            let not_ready_taint = n
                .spec
                .and_then(|s| s.taints)
                .is_some_and(|ts| ts.iter().any(|t| t.key == "node.kubernetes.io/not-ready"));
            ready && !not_ready_taint
        })
        .await;
    }
}

/// Deletes the test's namespace when the test ends, passed or not, so a
/// failed test's pods do not hold the node's CPUs.
struct DeleteNamespace<'a>(&'a RealNode, String);

impl Drop for DeleteNamespace<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .kubectl("default", &["delete", "namespace", &self.1, "--wait=false"]);
    }
}

/// A fresh namespace whose pods go to the real node (and only there).
async fn node_namespace(client: &Client, prefix: &str) -> String {
    let ns = namespace(client, prefix).await;
    let tolerations = json!([{"key": "corefit.dev/real-node", "operator": "Exists",
                              "effect": "NoSchedule"}])
    .to_string();
    Api::<Namespace>::all(client.clone())
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                "scheduler.alpha.kubernetes.io/node-selector": "corefit.dev/real-node=true",
                "scheduler.alpha.kubernetes.io/defaultTolerations": tolerations,
            }}})),
        )
        .await
        .expect("annotate namespace");
    ns
}

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

/// The app's pods, all Running and Ready on the node, `n` of them.
async fn ready_pods(pods: &Api<Pod>, name: &str, node: &str, n: usize) -> Vec<Pod> {
    let lp = ListParams::default().labels(&format!("corefit.dev/app={name}"));
    wait_for(
        &format!("{n} Running and Ready pods of {name}"),
        APP_READY,
        || async {
            let list = pods.list(&lp).await.ok()?.items;
            let ok = list.len() == n
                && list.iter().all(|p| {
                    let st = p.status.as_ref();
                    p.metadata.deletion_timestamp.is_none()
                        && p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
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
    eprintln!("{name}: Ready {took:?} after create; status {status}");
    check_plans(node, ns, &running, &status);
    let workers = status["workersPerPod"].as_i64().expect("workersPerPod");
    check_endpoints(client, node, ns, &name, &running, workers).await;
    (running, took)
}

/// Deleting the ClusterApp deletes its pods (through the Deployment the
/// garbage collector removes).
async fn delete_and_wait(client: &Client, ns: &str, name: &str) -> Duration {
    let apps: Api<ClusterApp> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let t0 = Instant::now();
    apps.delete(name, &DeleteParams::default())
        .await
        .expect("delete");
    let lp = ListParams::default().labels(&format!("corefit.dev/app={name}"));
    wait_until(&format!("the pods of {name} gone"), PODS_GONE, || async {
        pods.list(&lp).await.is_ok_and(|l| l.items.is_empty())
    })
    .await;
    t0.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn real_node_examples_run_as_decided() {
    let node = real_node();
    let client = client().await;
    install_crd(&client).await;
    node.ready(&client).await;
    let ns = node_namespace(&client, "real").await;
    let _cleanup = DeleteNamespace(&node, ns.clone());
    let _op = Operator::start(&ns).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);

    // web-horizontal.yaml as shipped (3 pods of 500m: 1.5 CPUs), on the
    // example app's image.
    let web = fit(
        "web-horizontal.yaml",
        json!({"image": "corefit/node-app:0.1.0", "command": ["node", "server.js"]}),
    );
    let (_, took) = run_example(&client, &node, &ns, web, 3).await;
    eprintln!(
        "measure: web (3 pods) Ready {:.1}s after create",
        took.as_secs_f64()
    );

    // kubectl scale: the scale subresource changes the pods.
    let out = node.kubectl(&ns, &["scale", "clusterapp/web", "--replicas=1"]);
    stdout(&out, "kubectl scale clusterapp/web --replicas=1");
    let left = ready_pods(&pods, "web", &node.name, 1).await;
    assert_eq!(left.len(), 1);
    let gone = delete_and_wait(&client, &ns, "web").await;
    eprintln!(
        "measure: web's pods gone {:.1}s after delete",
        gone.as_secs_f64()
    );

    // api-vertical.yaml asks for 2 pods of 4 CPUs; here 1 pod of 2 CPUs
    // (cluster mode, 2 workers by CPU).
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
    let gone = delete_and_wait(&client, &ns, "api").await;
    eprintln!(
        "measure: api's pods gone {:.1}s after delete",
        gone.as_secs_f64()
    );

    // worker-auto.yaml (launcher.mode: InitContainer) asks for 2 to 6
    // pods of 2.5 CPUs; here its floor, 2 pods of 1 CPU, on the Node base
    // image, which has no corefit: the init container copies it in from
    // the launcher image.
    let jobs = fit(
        "worker-auto.yaml",
        json!({"image": "node:22-bookworm-slim", "command": ["node", "-e", HELLO],
               "resources": {"cpu": "1", "memory": "1Gi"},
               "launcher": {"mode": "InitContainer", "image": "corefit/corefit:0.1.0", "adminPort": 9100}}),
    );
    let (running, took) = run_example(&client, &node, &ns, jobs, 2).await;
    let init = &running[0]
        .spec
        .as_ref()
        .unwrap()
        .init_containers
        .as_ref()
        .expect("an init container")[0];
    assert_eq!(init.image.as_deref(), Some("corefit/corefit:0.1.0"));
    eprintln!(
        "measure: jobs (InitContainer, 2 pods) Ready {:.1}s after create",
        took.as_secs_f64()
    );
    let gone = delete_and_wait(&client, &ns, "jobs").await;
    eprintln!(
        "measure: jobs' pods gone {:.1}s after delete",
        gone.as_secs_f64()
    );
}

/// examples/node-app's server, for an image that holds only Node.
const HELLO: &str = "const w = process.env.COREFIT_WORKER_ID ?? '0'; \
    require('node:http').createServer((q, s) => s.end(`hello from worker ${w} of \
    ${process.env.COREFIT_WORKERS ?? 1} (pid ${process.pid})\\n`)).listen(Number(process.env.PORT), \
    () => process.send && process.send('ready'));";
