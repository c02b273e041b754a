//! Benchmark: create 300 ClusterApps at once against the real control
//! plane and the real (release) operator binary, and report:
//! - time until every Deployment exists and every status is set;
//! - p50/p95 of create-to-Deployment latency (create request sent ->
//!   Deployment seen on a watch);
//! - the writes the operator sent (from its own metrics) and its reconciles;
//! - the operator's resident memory afterwards;
//! - writes during 30 idle seconds once everything settled.
//!
//! Targets (issue 5): converged < 30 s, zero idle writes, RSS < 60 MB.
//! Exits 1 when a target is missed.
//!
//! Run: bench/operator/run.sh (needs COREFIT_TEST_KUBECONFIG).

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use corefit_operator::types::ClusterApp;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Api, Client, Config, ResourceExt};
use serde_json::json;

const APPS: usize = 300;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let kubeconfig = std::env::var("COREFIT_TEST_KUBECONFIG").context(
        "COREFIT_TEST_KUBECONFIG is not set: eval \"$(tests/k8s/control-plane.sh start)\"",
    )?;
    let operator_bin = std::env::args()
        .nth(1)
        .context("usage: converge <path to corefit-operator>")?;
    let kc = Kubeconfig::read_from(&kubeconfig)?;
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    let client = Client::try_from(cfg)?;

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let crd: CustomResourceDefinition =
        serde_yaml::from_str(&std::fs::read_to_string(root.join("crds/clusterapp.yaml"))?)?;
    Api::<CustomResourceDefinition>::all(client.clone())
        .patch(
            "clusterapps.corefit.dev",
            &PatchParams::apply("corefit-bench").force(),
            &Patch::Apply(&crd),
        )
        .await?;
    let ns = format!("bench-{}", std::process::id());
    let nsobj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &nsobj)
        .await?;

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(&operator_bin)
        .env("KUBECONFIG", &kubeconfig)
        .env("COREFIT_OPERATOR_NAMESPACE", &ns)
        .env("COREFIT_OPERATOR_METRICS_ADDR", &addr)
        .env("COREFIT_OPERATOR_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("spawning {operator_bin}"))?;
    let pid = child.id();
    let result = run(&client, &ns, &addr, pid).await;
    // Stop the operator and clean up whatever happened above.
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    // No kubelet runs for the benchmark's pods: once the namespace is being
    // deleted, finish each pod's deletion (grace 0) as a kubelet would, or
    // the namespace would wait for one forever.
    let namespaces = Api::<Namespace>::all(client.clone());
    let _ = namespaces.delete(&ns, &Default::default()).await;
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), &ns);
    let cleanup_deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < cleanup_deadline {
        if matches!(namespaces.get_opt(&ns).await, Ok(None)) {
            break;
        }
        let _ = pods
            .delete_collection(
                &kube::api::DeleteParams::default().grace_period(0),
                &Default::default(),
            )
            .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    match result {
        Ok(true) => Ok(()),
        Ok(false) => std::process::exit(1),
        Err(e) => Err(e),
    }
}

/// Ok(true) when every target was met.
/// Every app's resource version, in list order.
async fn versions(apps: &Api<ClusterApp>) -> anyhow::Result<Vec<String>> {
    Ok(apps
        .list(&Default::default())
        .await?
        .items
        .iter()
        .map(|a| a.resource_version().unwrap_or_default())
        .collect())
}

/// Watches `api` and notes in `times` when each object (by name) first
/// matched `when`.
fn first_seen<K>(
    api: &Api<K>,
    times: Arc<Mutex<HashMap<String, Instant>>>,
    when: impl Fn(&K) -> bool + Send + 'static,
) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let s = watcher(api.clone(), watcher::Config::default());
    tokio::spawn(async move {
        let mut s = std::pin::pin!(s);
        while let Ok(Some(ev)) = s.try_next().await {
            if let watcher::Event::Apply(o) | watcher::Event::InitApply(o) = ev {
                if when(&o) {
                    times
                        .lock()
                        .unwrap()
                        .entry(o.name_any())
                        .or_insert_with(Instant::now);
                }
            }
        }
    })
}

async fn run(client: &Client, ns: &str, addr: &str, pid: u32) -> anyhow::Result<bool> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(addr, "/readyz").await.is_none_or(|b| b.trim() != "ok") {
        if Instant::now() > deadline {
            bail!("operator not ready within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let apps: Api<ClusterApp> = Api::namespaced(client.clone(), ns);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let status_set: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();

    // Watch before creating, so nothing is missed.
    let w_deps = first_seen(&deps, seen.clone(), |_| true);
    let w_apps = first_seen(&apps, status_set.clone(), |a: &ClusterApp| {
        a.status
            .as_ref()
            .is_some_and(|s| s.observed_generation.is_some() && s.mode.is_some())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let start = Instant::now();
    futures::stream::iter(0..APPS)
        .map(|i| {
            let apps = apps.clone();
            let sent = sent.clone();
            async move {
                let name = format!("app-{i:03}");
                let app: ClusterApp = serde_json::from_value(json!({
                    "apiVersion": "corefit.dev/v1alpha1", "kind": "ClusterApp",
                    "metadata": {"name": name},
                    "spec": {
                        "image": format!("registry.example/app:{i}"),
                        "port": 8080,
                        "resources": {"cpu": if i % 2 == 0 { "500m" } else { "2" }, "memory": "1Gi"},
                        "scaling": {"replicas": 1}
                    }
                }))?;
                sent.lock().unwrap().insert(name.clone(), Instant::now());
                apps.create(&PostParams::default(), &app).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    let created = start.elapsed();

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let d = seen.lock().unwrap().len();
        let s = status_set.lock().unwrap().len();
        if d >= APPS && s >= APPS {
            break;
        }
        if Instant::now() > deadline {
            bail!("not converged after 120 s: {d} Deployments, {s} statuses");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let converged = start.elapsed();
    let last_status = status_set
        .lock()
        .unwrap()
        .values()
        .max()
        .copied()
        .unwrap_or(start)
        - start;
    w_deps.abort();
    w_apps.abort();

    let mut lat: Vec<f64> = {
        let sent = sent.lock().unwrap();
        let seen = seen.lock().unwrap();
        sent.iter()
            .filter_map(|(n, t)| {
                seen.get(n)
                    .map(|s| s.duration_since(*t).as_secs_f64() * 1000.0)
            })
            .collect()
    };
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];

    let m = get(addr, "/metrics").await.unwrap_or_default();
    let writes = sum(&m, "corefit_operator_api_writes_total");
    let reconciles = sum(&m, "corefit_operator_reconciles_total");
    let errors = sum(&m, "corefit_operator_reconcile_errors_total");
    let by_kind: Vec<String> = m
        .lines()
        .filter(|l| l.starts_with("corefit_operator_api_writes_total{"))
        .map(|l| l.replace("corefit_operator_api_writes_total", ""))
        .collect();
    let rss_mb = rss_kb(pid)? as f64 / 1024.0;

    // Settle: the Deployment controller keeps updating Deployment status
    // (ReplicaSets, pods) for a while, and each update is a real change the
    // operator reflects in the app's status. Idle starts when every app
    // reports its rollout complete (pods exist; no kubelet runs here, so
    // they stay Pending) and the operator has written nothing for 2 s.
    let settle_start = Instant::now();
    let mut last_writes = -1.0;
    let mut quiet_since = Instant::now();
    loop {
        let list = apps.list(&Default::default()).await?;
        let complete = list
            .items
            .iter()
            .filter(|a| {
                a.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Progressing" && c.reason == "RolloutComplete")
                })
            })
            .count();
        let w = sum(
            &get(addr, "/metrics").await.unwrap_or_default(),
            "corefit_operator_api_writes_total",
        );
        if w != last_writes {
            last_writes = w;
            quiet_since = Instant::now();
        }
        if complete == APPS && quiet_since.elapsed() > Duration::from_secs(2) {
            break;
        }
        if settle_start.elapsed() > Duration::from_secs(180) {
            bail!("not settled after 180 s: {complete}/{APPS} rollouts complete");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let settled = settle_start.elapsed() + converged;
    let m_settled = get(addr, "/metrics").await.unwrap_or_default();
    let writes_settled = sum(&m_settled, "corefit_operator_api_writes_total");
    let rv_before = versions(&apps).await?;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let m2 = get(addr, "/metrics").await.unwrap_or_default();
    let idle_writes = sum(&m2, "corefit_operator_api_writes_total") - writes_settled;
    let rv_after = versions(&apps).await?;
    let apps_changed = rv_before
        .iter()
        .zip(&rv_after)
        .filter(|(a, b)| a != b)
        .count();
    let rss_idle_mb = rss_kb(pid)? as f64 / 1024.0;

    println!("corefit-operator benchmark: {APPS} ClusterApps created at once (32 in flight)");
    println!(
        "  all created (API accepted)        {:>8.2} s",
        created.as_secs_f64()
    );
    println!(
        "  converged (all Deployments + status) {:>5.2} s   (target < 30 s)",
        converged.as_secs_f64()
    );
    println!(
        "  last status set at                {:>8.2} s",
        last_status.as_secs_f64()
    );
    println!(
        "  create -> Deployment latency      p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        pct(0.5),
        pct(0.95),
        pct(1.0)
    );
    println!("  operator reconciles               {reconciles:>8}");
    println!(
        "  operator writes (API requests)    {writes:>8}   {}",
        by_kind.join(" ")
    );
    println!("  operator reconcile errors         {:>8}", errors + 0.0);
    println!(
        "  settled (rollouts complete) at    {:>8.2} s; writes by then {writes_settled}",
        settled.as_secs_f64()
    );
    println!("  writes in 30 idle seconds after   {idle_writes:>8}   (target 0); ClusterApps changed: {apps_changed}");
    println!("  operator RSS after / idle         {rss_mb:.1} MB / {rss_idle_mb:.1} MB   (target < 60 MB)");
    let ok = converged < Duration::from_secs(30)
        && idle_writes == 0.0
        && apps_changed == 0
        && rss_idle_mb < 60.0
        && rss_mb < 60.0;
    println!("  targets: {}", if ok { "MET" } else { "MISSED" });
    Ok(ok)
}

fn sum(text: &str, family: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn rss_kb(pid: u32) -> anyhow::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("VmRSS missing")
}

async fn get(addr: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
}
