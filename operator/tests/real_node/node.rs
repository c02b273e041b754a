//! The real node as the tests see it (tests/k8s/node.sh's exports):
//! kubectl against the control plane, commands inside the node's network
//! namespace, the node's readiness, and namespaces pinned to the node.

use std::process::{Command, Output};
use std::time::Duration;

use corefit_test_support::k8s::*;
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

/// Held by each test for as long as its pods are on the node: the node has
/// 2 allocatable CPUs, and one test's drain cordons it for all.
pub static NODE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// tests/k8s/run-operator-tests.sh starts the node while the other
/// operator tests run: it may still be on its way up.
const NODE_READY: Duration = Duration::from_secs(300);

/// The node's exports (tests/k8s/node.sh env).
pub struct RealNode {
    netns: String,
    pub name: String,
    kubectl: String,
    logs: String,
}

pub fn real_node() -> RealNode {
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
    pub fn kubectl(&self, ns: &str, args: &[&str]) -> Output {
        Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(kubeconfig_path())
            .args(["--request-timeout=30s", "-n", ns])
            .args(args)
            .output()
            .expect("kubectl runs")
    }

    /// A command in the node's network namespace, where the pods are.
    pub fn inside(&self, args: &[&str]) -> Output {
        self.inside_command(args)
            .output()
            .expect("ip netns exec runs")
    }

    /// The same, to spawn.
    pub fn inside_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.netns]).args(args);
        c
    }

    /// GET http://ADDR/PATH from inside the node's network.
    pub fn get(&self, addr: &str, path: &str) -> Option<String> {
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

    /// The pids that answered `n` GETs of / at ADDR, each on a fresh
    /// connection (`Connection: close`), from inside the node's network.
    pub fn pids_serving(&self, addr: &str, n: usize) -> Vec<u32> {
        let url = format!("http://{addr}/");
        let mut args = vec!["curl", "-s", "--max-time", "10", "-H", "Connection: close"];
        args.extend(std::iter::repeat_n(url.as_str(), n));
        let out = self.inside(&args);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split("(pid ").nth(1)?.trim_end_matches(')').parse().ok())
            .collect()
    }

    pub async fn ready(&self, client: &Client) {
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
pub struct DeleteNamespace<'a>(pub &'a RealNode, pub String);

impl Drop for DeleteNamespace<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .kubectl("default", &["delete", "namespace", &self.1, "--wait=false"]);
    }
}

/// A fresh namespace whose pods go to the real node (and only there).
pub async fn node_namespace(client: &Client, prefix: &str) -> String {
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
