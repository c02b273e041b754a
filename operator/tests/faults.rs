//! Operator faults (issue 7, item 3): the real `corefit-operator` binary
//! against the real control plane of tests/k8s/control-plane.sh (etcd,
//! kube-apiserver 1.20.2, controller-manager, scheduler), with the test
//! kubelet (support/kubelet.rs) marking pods ready.
//!
//! | test | fault |
//! |---|---|
//! | `apiserver_stopped_for_20_s_mid_reconcile` | 40 apps created, 8 of them changed, the apiserver stopped at once (SIGTERM) and started again 20 s later |
//! | `etcd_restarted_mid_reconcile` | the same with etcd stopped for 10 s and started again on its data directory, the operator running with leader election (15 s Lease, so a renewal falls in the outage: it waits for etcd and succeeds) |
//! | `a_rival_writer_on_replicas_is_settled_by_ownership` | another field manager writing the Deployment's `spec.replicas` |
//! | `operator_killed_while_reconciling_100_apps` | SIGKILL of the operator with 100 apps part done, a new operator started |
//!
//! The apiserver outage runs without leader election: longer than the
//! Lease, it would make a leader step down and exit by design (see
//! docs/operator.md), and Kubernetes would restart it.
//!
//! Each ends the same way, with the same operator process (or, after the
//! kill, its one replacement): every app converged (status for its current
//! generation, Ready, not Degraded; its Deployment, Service, HPA and PDB
//! hold what [`desired`] says; the rollout done with the wanted pods), no
//! duplicate (no Deployment, Service, HPA or PDB that is not its app's, no
//! ReplicaSet beyond the rollouts the specs asked for, no second
//! `DecisionChanged` event for an app), none lost (every app created is
//! there with its uid); then a quiet window ([`IDLE`], 20 s) in which the
//! operator writes nothing (its write counter) and no resourceVersion of
//! any app, child or event of the operator's moves.
//!
//! ## Who wins `spec.replicas`
//!
//! Without autoscaling the ClusterApp owns the count (`kubectl scale
//! clusterapp`): the operator applies it, forced, as `corefit-operator`.
//! - Another manager's server-side apply of `spec.replicas` without force
//!   gets 409 Conflict: nothing is written, the operator does nothing.
//! - An update (`kubectl scale deployment`, a patch, an edit) or a forced
//!   apply takes the field; the watch shows it to the operator, which puts
//!   its value back with one apply per change (two when a Deployment status
//!   event carrying the rival's value slips in between), and owns the field
//!   again. Nothing answers the operator's write, so there is no war: when
//!   the rival stops, the writes stop.
//! - With autoscaling the operator has handed the field over (see
//!   docs/operator.md) and leaves it alone: a rival's value stays (it is the
//!   HPA's to correct) and the operator writes no Deployment.
//!
//! The scenarios take turns ([`SERIAL`]): two of them stop a component of
//! the control plane every test shares (cargo runs test binaries one after
//! another, so no other binary runs meanwhile), and a stopped component is
//! started again even when an assertion fails (support::control_plane).
//! Figures go to `$COREFIT_RELIABILITY_OUT` (test-support/src/record.rs).
//!
//! Needs COREFIT_TEST_KUBECONFIG; without it every test fails (no skip).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use corefit_operator::autoscale::{owns_replicas, ReplicasOwner};
use corefit_operator::compare::contains;
use corefit_operator::decide::ClusterInfo;
use corefit_operator::desired::{desired, APP_LABEL, MANAGER};
use corefit_operator::discovery;
use corefit_operator::types::ClusterApp;
use corefit_test_support::k8s::control_plane::{ControlPlane, Stop};
use corefit_test_support::k8s::*;
use corefit_test_support::record::record;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

/// One scenario at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The quiet window after each scenario, in which the operator must write
/// nothing (issue 7 asked for a minute; 20 s catches the same loops in a
/// third of the time). What could make the operator write after
/// convergence, and how often:
/// - Nothing periodic of its own: a reconcile that succeeds returns
///   `Action::await_change()` (operator/src/reconcile/app.rs), so only a
///   watch event or a failure's requeue runs another one.
/// - A hot loop on its own writes (write, watch event, reconcile, write)
///   turns at watch latency, well under a second (a broken watch is
///   retried within 5 s: operator/src/backoff.rs `WatchBackoff`): many
///   writes in any window of a few seconds.
/// - A reconcile that keeps failing is requeued after 2 s doubling to
///   300 s (reconcile/context.rs) and records a Warning event each time
///   (an invalid spec's retries write nothing): 20 s sees it while its
///   delay is at most 16 s (retries 1-4); a minute saw one retry more, and
///   neither sees one that backed off further.
/// - A tug of war with a controller of the control plane is paced by that
///   controller. The slowest one here with a say in the operator's objects
///   is kube-controller-manager's HPA controller, every 15 s (its default
///   `--horizontal-pod-autoscaler-sync-period`, which
///   tests/k8s/control-plane.sh keeps); the Deployment, ReplicaSet and
///   disruption controllers act on events at once. With leader election
///   the Lease is renewed every 10 s (15 s Lease, renewed 5 s before it
///   runs out: operator/src/leader.rs), and a lost Lease ends the process,
///   which the window checks too.
///
/// So 20 s = the longest of these periods (15 s) and 5 s for that pass and
/// the watch to deliver its result. Beyond any such window (a minute's
/// included): the watches' 290 s request timeout (kube's watcher default).
const IDLE: Duration = Duration::from_secs(20);
/// The figure of the writes in [`IDLE`] (its length spelled out).
const IDLE_WRITES: &str = "writes in 20 s after";
/// How long convergence may take after a fault ends.
const CONVERGE: Duration = Duration::from_secs(150);
/// How long after a stopped component is back every app must have
/// converged. With kube-runtime's default watch backoffs it took 75-125 s
/// after a 20 s apiserver outage (see operator/src/backoff.rs); now
/// about 5-10 s.
const RECOVER: Duration = Duration::from_secs(45);

/// The operator's log filter here: also the watch streams' backoff, to see
/// when watching resumes after a fault.
const OPERATOR_LOG: (&str, &str) = (
    "COREFIT_OPERATOR_LOG",
    "info,kube=warn,kube_runtime::utils::stream_backoff=debug",
);

async fn operator(ns: &str) -> Operator {
    Operator::start_with(ns, &[OPERATOR_LOG]).await
}
const STATUS_APPLIES: &str =
    r#"corefit_operator_api_writes_total{kind="ClusterAppStatus",verb="apply"}"#;
const DEPLOYMENT_APPLIES: &str =
    r#"corefit_operator_api_writes_total{kind="Deployment",verb="apply"}"#;

const IMAGE_1: &str = "registry.example/app:1";
const IMAGE_2: &str = "registry.example/app:2";

fn name(i: usize) -> String {
    format!("app-{i:03}")
}

/// A mix of specs: mostly one pod in single mode; every 10th from 3 on
/// two pods (so a PDB), from 5 on four workers per pod (vertical), from 7
/// on autoscaled (an HPA and the replicas hand-over).
fn spec(i: usize, image: &str) -> Value {
    match i % 10 {
        3 => json!({"image": image, "port": 8080, "scaling": {"replicas": 2}}),
        5 => json!({
            "image": image,
            "resources": {"cpu": "4", "memory": "2Gi"},
            "scaling": {"strategy": "Vertical", "memoryPerWorker": "256Mi"},
        }),
        7 => json!({
            "image": image,
            "resources": {"cpu": "2", "memory": "1Gi"},
            "scaling": {"autoscaling": {
                "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 70}},
        }),
        _ => json!({"image": image, "port": 8080}),
    }
}

fn app(name: &str, spec: Value) -> ClusterApp {
    cluster_app(name, spec)
}

fn controller_uid<K: Resource>(obj: &K) -> Option<String> {
    obj.meta()
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.clone())
}

fn condition_is(app: &ClusterApp, type_: &str, status: &str) -> bool {
    app.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == status)
    })
}

async fn writes(op: &Operator) -> f64 {
    metric_sum(&op.metrics().await, API_WRITES)
}

/// The last lines of the operator's log, for failure messages.
fn log_tail(op: &Operator) -> String {
    tail(&op.log_text(), 40)
}

/// What the namespace holds, judged against the apps created.
#[derive(Debug, Default)]
struct Survey {
    deployments: usize,
    /// Apps with a status for their current generation.
    statuses: usize,
    ready: usize,
    converged: usize,
    /// Why the others are not converged yet, one line each.
    waiting: Vec<String>,
    lost: Vec<String>,
    duplicates: Vec<String>,
    /// kind/name -> resourceVersion of every app, child and event of the
    /// operator's.
    versions: BTreeMap<String, String>,
}

/// A namespace of apps with the test kubelet running for it.
struct Fleet {
    client: Client,
    ns: String,
    apps: Api<ClusterApp>,
    /// name -> uid of every app created.
    uids: BTreeMap<String, String>,
    /// Apps whose pod template changed once after creation (a second
    /// ReplicaSet is then expected).
    changed: BTreeSet<String>,
    hpas: Api<DynamicObject>,
    pdbs: Api<DynamicObject>,
    kubelet: JoinHandle<()>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.kubelet.abort();
    }
}

impl Fleet {
    async fn new(prefix: &str) -> Fleet {
        let (client, ns) = setup(prefix).await;
        kubelet::register_node(&client).await.expect("node");
        let kubelet = kubelet::run(client.clone(), &ns);
        let versions = discovery::fetch(&client).await.expect("API discovery");
        Fleet {
            apps: Api::namespaced(client.clone(), &ns),
            hpas: dynamic(
                &client,
                &ns,
                versions.hpa,
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers",
            ),
            pdbs: dynamic(
                &client,
                &ns,
                versions.pdb,
                "PodDisruptionBudget",
                "poddisruptionbudgets",
            ),
            client,
            ns,
            uids: BTreeMap::new(),
            changed: BTreeSet::new(),
            kubelet,
        }
    }

    async fn create(&mut self, name: &str, spec: Value) {
        let created = self
            .apps
            .create(&PostParams::default(), &app(name, spec))
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
        self.uids
            .insert(name.to_owned(), created.uid().expect("uid"));
    }

    /// Creates apps 0..n with [`spec`].
    async fn create_mix(&mut self, n: usize) {
        for i in 0..n {
            self.create(&name(i), spec(i, IMAGE_1)).await;
        }
    }

    /// A new image for these apps: a new generation and a rollout.
    async fn change_image(&mut self, names: &[String]) {
        for n in names {
            self.apps
                .patch(
                    n,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"image": IMAGE_2}})),
                )
                .await
                .unwrap_or_else(|e| panic!("change {n}: {e}"));
            self.changed.insert(n.clone());
        }
    }

    fn n(&self) -> usize {
        self.uids.len()
    }

    /// An API for `K` in this namespace.
    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn survey(&self) -> Survey {
        let apps = list_all(&self.apps).await;
        let deps = list_all(&self.api::<Deployment>()).await;
        let svcs = list_all(&self.api::<Service>()).await;
        let rss = list_all(&self.api::<ReplicaSet>()).await;
        let pods = list_all(&self.api::<Pod>()).await;
        let hpas = list_all(&self.hpas).await;
        let pdbs = list_all(&self.pdbs).await;
        let events: Vec<Event> = list_all(&self.api::<Event>())
            .await
            .into_iter()
            .filter(by_operator)
            .collect();

        let mut s = Survey::default();
        fn version<K: Resource>(kind: &str, o: &K) -> (String, String) {
            let m = o.meta();
            (
                format!("{kind}/{}", m.name.clone().unwrap_or_default()),
                m.resource_version.clone().unwrap_or_default(),
            )
        }
        s.versions.extend(apps.iter().map(|o| version("app", o)));
        s.versions.extend(deps.iter().map(|o| version("deploy", o)));
        s.versions.extend(svcs.iter().map(|o| version("svc", o)));
        // The HPA controller rewrites its HPAs' status (here it never gets
        // metrics: no metrics server); what is the operator's is the spec
        // (generation) and the fields it applied (their managedFields time).
        s.versions.extend(hpas.iter().map(|o| {
            let m = o.meta();
            let applied: Vec<String> = m
                .managed_fields
                .iter()
                .flatten()
                .filter(|f| f.manager.as_deref() == Some(MANAGER))
                .map(|f| format!("{:?}", f.time))
                .collect();
            (
                format!("hpa/{}", m.name.clone().unwrap_or_default()),
                format!("generation {:?}, applied {applied:?}", m.generation),
            )
        }));
        s.versions.extend(pdbs.iter().map(|o| version("pdb", o)));
        s.versions
            .extend(events.iter().map(|o| version("event", o)));
        s.deployments = deps.len();

        // Children that are no app's: duplicates.
        let by_name: BTreeMap<String, &ClusterApp> =
            apps.iter().map(|a| (a.name_any(), a)).collect();
        let mut foreign = |kind: &str, name: String, owner: Option<String>| {
            let ours = by_name
                .get(&name)
                .and_then(|a| a.uid())
                .is_some_and(|uid| owner.as_deref() == Some(uid.as_str()));
            if !ours {
                s.duplicates
                    .push(format!("{kind} {name} is not its app's (owner {owner:?})"));
            }
        };
        for d in &deps {
            foreign("Deployment", d.name_any(), controller_uid(d));
        }
        for o in &svcs {
            foreign("Service", o.name_any(), controller_uid(o));
        }
        for o in &hpas {
            foreign("HPA", o.name_any(), controller_uid(o));
        }
        for o in &pdbs {
            foreign("PDB", o.name_any(), controller_uid(o));
        }
        let mut decisions: BTreeMap<String, usize> = BTreeMap::new();
        for e in &events {
            if e.reason.as_deref() == Some("DecisionChanged") {
                let app = e
                    .regarding
                    .as_ref()
                    .and_then(|r| r.name.clone())
                    .unwrap_or_default();
                *decisions.entry(app).or_default() += 1;
            }
        }
        for (app, n) in &decisions {
            if *n > 1 {
                s.duplicates.push(format!(
                    "{app}: {n} DecisionChanged events for one decision"
                ));
            }
        }

        let info = ClusterInfo::default();
        for (name, uid) in &self.uids {
            let Some(a) = by_name
                .get(name)
                .filter(|a| a.uid().as_deref() == Some(uid))
            else {
                s.lost.push(name.clone());
                continue;
            };
            // A spec change acknowledged before the fault is not lost
            // either.
            if self.changed.contains(name) && a.spec.image.as_deref() != Some(IMAGE_2) {
                s.lost.push(format!("{name}: its spec change"));
            }
            let dep = deps.iter().find(|d| &d.name_any() == name);
            if let Some(d) = dep {
                let rollouts = rss.iter().filter(|r| controller_uid(*r) == d.uid()).count();
                let allowed = 1 + usize::from(self.changed.contains(name));
                if rollouts > allowed {
                    s.duplicates.push(format!(
                        "{name}: {rollouts} ReplicaSets, the spec asked for {allowed}"
                    ));
                }
            }
            let why = not_converged(a, dep, &svcs, &hpas, &pdbs, &pods, &info);
            let st = a.status.as_ref();
            if st.is_some_and(|st| st.observed_generation == a.metadata.generation) {
                s.statuses += 1;
            }
            if condition_is(a, "Ready", "True") {
                s.ready += 1;
            }
            match why {
                None => s.converged += 1,
                Some(w) => s.waiting.push(format!("{name}: {w}")),
            }
        }
        s
    }

    /// Polls until every app converged; panics after `deadline` saying
    /// which did not and why. Returns the time it took and the survey.
    async fn wait_converged(&self, op: &mut Operator, deadline: Duration) -> (Duration, Survey) {
        let start = Instant::now();
        loop {
            assert!(
                op.alive(),
                "the operator died: {:?}\n{}",
                op.exited(),
                log_tail(op)
            );
            let s = self.survey().await;
            if s.converged == self.n() && s.lost.is_empty() {
                return (start.elapsed(), s);
            }
            assert!(
                start.elapsed() < deadline,
                "not converged after {deadline:?}: {}/{} apps; lost {:?}; duplicates {:?}; \
                 waiting (first 10): {:#?}\noperator log:\n{}",
                s.converged,
                self.n(),
                s.lost,
                s.duplicates,
                &s.waiting[..s.waiting.len().min(10)],
                log_tail(op)
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// [`Fleet::idle_window`], then [`assert_clean`]: the writes of that
    /// window.
    async fn idle_and_clean(&self, survey: &Survey, op: &mut Operator) -> f64 {
        let (idle, moved) = self.idle_window(op).await;
        assert_clean(survey, idle, &moved, op);
        idle
    }

    /// One quiet window ([`IDLE`]): returns the operator's writes in it and the
    /// objects whose resourceVersion moved.
    async fn idle_window(&self, op: &mut Operator) -> (f64, Vec<String>) {
        let before = self.survey().await.versions;
        let w0 = writes(op).await;
        tokio::time::sleep(IDLE).await;
        assert!(
            op.alive(),
            "the operator died while idle:\n{}",
            log_tail(op)
        );
        let w1 = writes(op).await;
        let after = self.survey().await.versions;
        let moved = before
            .keys()
            .chain(after.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|k| before.get(*k) != after.get(*k))
            .map(|k| {
                format!(
                    "{k}: {} -> {}",
                    before.get(k).map_or("absent", String::as_str),
                    after.get(k).map_or("absent", String::as_str)
                )
            })
            .collect();
        (w1 - w0, moved)
    }
}

/// None when the app and its children are where its spec says, else why
/// not.
fn not_converged(
    app: &ClusterApp,
    dep: Option<&Deployment>,
    svcs: &[Service],
    hpas: &[DynamicObject],
    pdbs: &[DynamicObject],
    pods: &[Pod],
    info: &ClusterInfo,
) -> Option<String> {
    let name = app.name_any();
    let uid = app.uid();
    let Some(st) = app.status.as_ref() else {
        return Some("no status".into());
    };
    if st.observed_generation != app.metadata.generation {
        return Some(format!(
            "status for generation {:?}, spec at {:?}",
            st.observed_generation, app.metadata.generation
        ));
    }
    if !condition_is(app, "Degraded", "False") {
        return Some("Degraded is not False".into());
    }
    let want = match desired(app, info) {
        Ok(w) => w,
        Err(e) => return Some(format!("invalid spec: {e}")),
    };
    let Some(dep) = dep else {
        return Some("no Deployment".into());
    };
    if controller_uid(dep) != uid {
        return Some("the Deployment is not the app's".into());
    }
    let mut dep_want = want.deployment.clone();
    if want.replicas_owner == ReplicasOwner::HorizontalPodAutoscaler {
        dep_want.spec.replicas = None;
    }
    let have = serde_json::to_value(dep).expect("json");
    if let Some(d) = difference(&have, &serde_json::to_value(&dep_want).expect("json")) {
        return Some(format!("the Deployment differs from the spec at {d}"));
    }
    let replicas = dep.spec.replicas.unwrap_or(1);
    let ds = dep.status.clone().unwrap_or_default();
    let settled = ds.observed_generation >= dep.metadata.generation
        && ds.replicas == Some(replicas)
        && ds.updated_replicas == Some(replicas)
        && ds.available_replicas == Some(replicas)
        && ds.conditions.iter().flatten().any(|c| {
            c.type_.as_deref() == Some("Progressing")
                && c.reason.as_deref() == Some("NewReplicaSetAvailable")
        });
    if !settled {
        return Some(format!("rollout under way ({ds:?})"));
    }
    let running = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.labels().get(APP_LABEL) == Some(&name))
        .count();
    if running != replicas as usize {
        return Some(format!("{running} pods for {replicas} replicas"));
    }
    if !condition_is(app, "Ready", "True") {
        return Some("Ready is not True".into());
    }
    let Some(svc) = svcs.iter().find(|s| s.name_any() == name) else {
        return Some("no Service".into());
    };
    if controller_uid(svc) != uid {
        return Some("the Service is not the app's".into());
    }
    if let Some(d) = difference(
        &serde_json::to_value(svc).expect("json"),
        &serde_json::to_value(&want.service).expect("json"),
    ) {
        return Some(format!("the Service differs from the spec at {d}"));
    }
    let optional = |kind: &str, have: &[DynamicObject], want: Option<Value>| {
        let have = have.iter().find(|o| o.name_any() == name);
        match (have, want) {
            (None, None) => None,
            (Some(_), None) => Some(format!("a {kind} the spec does not ask for")),
            (None, Some(_)) => Some(format!("no {kind}")),
            (Some(h), Some(mut w)) => {
                let h = serde_json::to_value(h).expect("json");
                // Served in an older version here (v2beta2, v1beta1),
                // with the fields the operator sets alike; list items
                // carry no apiVersion and kind.
                if let Some(w) = w.as_object_mut() {
                    w.remove("apiVersion");
                    w.remove("kind");
                }
                if controller_uid_json(&h) != uid {
                    return Some(format!("the {kind} is not the app's"));
                }
                difference(&h, &w).map(|d| format!("the {kind} differs from the spec at {d}"))
            }
        }
    };
    if let Some(w) = optional(
        "HPA",
        hpas,
        want.hpa
            .as_ref()
            .map(|h| serde_json::to_value(h).expect("json")),
    ) {
        return Some(w);
    }
    optional(
        "PDB",
        pdbs,
        want.pdb
            .as_ref()
            .map(|p| serde_json::to_value(p).expect("json")),
    )
}

/// Where `observed` does not hold `desired` (the operator's own
/// [`contains`]), as a path with both values; None when it does.
fn difference(observed: &Value, desired: &Value) -> Option<String> {
    if contains(observed, desired) {
        return None;
    }
    match (observed, desired) {
        (Value::Object(o), Value::Object(d)) => {
            for (k, dv) in d {
                let ov = o.get(k).unwrap_or(&Value::Null);
                if let Some(rest) = difference(ov, dv) {
                    return Some(format!(".{k}{rest}"));
                }
            }
            None
        }
        (Value::Array(o), Value::Array(d)) if o.len() == d.len() => o
            .iter()
            .zip(d)
            .enumerate()
            .find_map(|(i, (ov, dv))| difference(ov, dv).map(|rest| format!("[{i}]{rest}"))),
        _ => Some(format!(": {observed} instead of {desired}")),
    }
}

fn controller_uid_json(obj: &Value) -> Option<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|o| o["controller"] == json!(true))
        .and_then(|o| o["uid"].as_str())
        .map(str::to_owned)
}

/// The figures every scenario records, in one order.
fn figures(
    apps: usize,
    converged_after: Duration,
    survey: &Survey,
    idle_writes: f64,
    restarts: u32,
    recovery_writes: f64,
) -> Vec<(&'static str, String)> {
    vec![
        ("ClusterApps", apps.to_string()),
        (
            "converged after s",
            format!("{:.1}", converged_after.as_secs_f64()),
        ),
        ("duplicates", survey.duplicates.len().to_string()),
        ("lost", survey.lost.len().to_string()),
        (IDLE_WRITES, format!("{idle_writes}")),
        ("operator restarts", restarts.to_string()),
        ("operator writes to recover", format!("{recovery_writes}")),
    ]
}

/// Asserts the end state every scenario shares: converged (done by the
/// caller), nothing duplicated or lost, a quiet window.
fn assert_clean(survey: &Survey, idle_writes: f64, moved: &[String], op: &Operator) {
    assert!(survey.lost.is_empty(), "lost apps: {:?}", survey.lost);
    assert!(
        survey.duplicates.is_empty(),
        "duplicates: {:#?}",
        survey.duplicates
    );
    assert_eq!(
        idle_writes,
        0.0,
        "the operator wrote {idle_writes} times in the quiet {IDLE:?}\n{}",
        log_tail(op)
    );
    assert!(
        moved.is_empty(),
        "objects changed in the quiet {IDLE:?}: {moved:#?}"
    );
}

/// A component stopped right after a burst of creates and spec changes,
/// down for `down_for`, then started again; the same operator process must
/// converge by itself.
async fn outage(
    prefix: &str,
    component: &'static str,
    down_for: Duration,
    apps: usize,
    leader_election: bool,
    scenario: &str,
    fault: &str,
) {
    let cp = ControlPlane::from_env();
    let mut fleet = Fleet::new(prefix).await;
    let mut op = if leader_election {
        let ns = fleet.ns.clone();
        let op = Operator::start_with(
            &ns,
            &[
                OPERATOR_LOG,
                ("COREFIT_OPERATOR_LEADER_ELECTION", "true"),
                ("POD_NAMESPACE", &ns),
                ("POD_NAME", "faults-operator"),
            ],
        )
        .await;
        wait_until("the operator leads", Duration::from_secs(30), || async {
            op.metric(LEADER).await == 1.0
        })
        .await;
        op
    } else {
        operator(&fleet.ns).await
    };
    fleet.create_mix(apps).await;
    let changed: Vec<String> = (0..apps).step_by(5).map(name).collect();
    fleet.change_image(&changed).await;
    let at_stop = fleet.survey().await;
    let w0 = writes(&op).await;

    let down = cp.stop(component, Stop::Term).await;
    let stopped_at = down.stopped_at;
    tokio::time::sleep_until((stopped_at + down_for).into()).await;
    assert!(
        op.alive(),
        "the operator died while {component} was down:\n{}",
        log_tail(&op)
    );
    let took = down.start().await;
    let outage = stopped_at.elapsed();
    eprintln!(
        "{component} down {:.1} s (start took {:.1} s); at the stop: {}/{apps} Deployments, \
         {} statuses current, {} Ready, {} converged",
        outage.as_secs_f64(),
        took.as_secs_f64(),
        at_stop.deployments,
        at_stop.statuses,
        at_stop.ready,
        at_stop.converged
    );
    assert!(
        at_stop.converged < apps,
        "the fault came too late: every app had converged before it"
    );

    let (after, survey) = fleet.wait_converged(&mut op, RECOVER).await;
    if leader_election {
        assert_eq!(op.metric(LEADER).await, 1.0, "the operator stepped down");
    }
    let recovery = writes(&op).await - w0;
    let errors = metric_sum(&op.metrics().await, RECONCILE_ERRORS);
    eprintln!(
        "converged {:.1} s after {component} was back; {recovery} writes, {errors} reconcile errors",
        after.as_secs_f64()
    );
    let idle = fleet.idle_and_clean(&survey, &mut op).await;
    record(
        "operator",
        scenario,
        fault,
        outage,
        &figures(apps, after, &survey, idle, 0, recovery),
        &format!(
            "same operator process recovered by itself; at the stop {}/{apps} apps had a \
             Deployment, {} were Ready; {errors} reconcile errors, retried; all converged, \
             then no writes",
            at_stop.deployments, at_stop.ready
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn apiserver_stopped_for_20_s_mid_reconcile() {
    let _turn = SERIAL.lock().await;
    // 20 s, not less: RECOVER is judged against it. Every watch stream
    // reaches its 5 s retry ceiling within 7.5 s, but kube-runtime's
    // defaults (0.8 s doubling to 30 s, jittered, one more shared on top)
    // left the operator deaf 75-125 s after this outage; a shorter one
    // keeps such backoffs lower, and a return to them could pass within
    // RECOVER.
    outage(
        "fault-apiserver",
        "kube-apiserver",
        Duration::from_secs(20),
        40,
        false,
        "apiserver stopped 20 s mid-reconcile",
        "40 apps created and 8 changed, kube-apiserver stopped (SIGTERM) at once, \
         started again 20 s later",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_restarted_mid_reconcile() {
    let _turn = SERIAL.lock().await;
    // 10 s, not less: the Lease (15 s) is renewed every 10 s, so only an
    // outage this long is sure to hold a renewal.
    outage(
        "fault-etcd",
        "etcd",
        Duration::from_secs(10),
        40,
        true,
        "etcd restarted mid-reconcile",
        "40 apps created and 8 changed, etcd stopped (SIGTERM) at once, started again \
         on its data directory 10 s later; leader election on (15 s Lease)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_killed_while_reconciling_100_apps() {
    let _turn = SERIAL.lock().await;
    const APPS: usize = 100;
    let mut fleet = Fleet::new("fault-kill").await;
    fleet.create_mix(APPS).await;
    let mut op = operator(&fleet.ns).await;
    // Its own counter, read every 10 ms: the kill lands right after its
    // 10th status write, with some apps done, some half done (Deployment
    // and Service, no status yet), some not started, and requests in
    // flight.
    let start = Instant::now();
    while op.metric(STATUS_APPLIES).await < 10.0 {
        assert!(
            start.elapsed() < CONVERGE,
            "the operator wrote no 10 statuses:\n{}",
            log_tail(&op)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    op.kill();
    let killed_at = Instant::now();
    let at_kill = fleet.survey().await;
    eprintln!(
        "SIGKILL with {}/{APPS} Deployments, {} statuses current, {} Ready",
        at_kill.deployments, at_kill.statuses, at_kill.ready
    );
    assert!(
        at_kill.statuses < APPS,
        "the kill came too late: every app had its status"
    );

    // What Kubernetes does for a killed operator pod: start it again.
    let mut op = operator(&fleet.ns).await;
    let (_, survey) = fleet.wait_converged(&mut op, CONVERGE).await;
    let after = killed_at.elapsed();
    let recovery = writes(&op).await;
    eprintln!(
        "converged {:.1} s after the kill; the new operator wrote {recovery} times",
        after.as_secs_f64()
    );
    let idle = fleet.idle_and_clean(&survey, &mut op).await;
    record(
        "operator",
        "operator SIGKILLed reconciling 100 apps",
        "100 apps created, the operator SIGKILLed right after its 10th status write, a \
         new operator started",
        after,
        &figures(APPS, after, &survey, idle, 1, recovery),
        &format!(
            "at the kill {}/{APPS} Deployments, {} statuses; the new operator finished the \
             rest, all converged, then no writes",
            at_kill.deployments, at_kill.statuses
        ),
    );
}

/// Polls until Deployment `name` has `replicas` and `manager` owns the
/// field by apply; returns how long it took.
async fn wait_replicas(
    deps: &Api<Deployment>,
    name: &str,
    replicas: i32,
    manager: &str,
) -> Duration {
    let start = Instant::now();
    wait_until(
        &format!("Deployment {name} at {replicas} replicas owned by {manager}"),
        Duration::from_secs(30),
        || async {
            deps.get(name)
                .await
                .is_ok_and(|d| d.spec.replicas == Some(replicas) && owns_replicas(&d, manager))
        },
    )
    .await;
    start.elapsed()
}

fn replicas_body(name: &str, n: i32) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": n},
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rival_writer_on_replicas_is_settled_by_ownership() {
    let _turn = SERIAL.lock().await;
    const ROUNDS: usize = 10;
    let mut fleet = Fleet::new("fault-rival").await;
    let mut op = operator(&fleet.ns).await;
    let deps: Api<Deployment> = Api::namespaced(fleet.client.clone(), &fleet.ns);
    fleet
        .create(
            "fixed",
            json!({"image": "registry.example/app:1", "scaling": {"replicas": 2}}),
        )
        .await;
    fleet
        .create(
            "scaled",
            json!({
                "image": "registry.example/app:1",
                "resources": {"cpu": "1", "memory": "512Mi"},
                "scaling": {"autoscaling": {
                    "minReplicas": 2, "maxReplicas": 6, "targetCPUUtilizationPercentage": 70}},
            }),
        )
        .await;
    fleet.wait_converged(&mut op, CONVERGE).await;
    let start = Instant::now();
    let fixed_rv = deps.get("fixed").await.unwrap().resource_version();
    let applies0 = op.metric(DEPLOYMENT_APPLIES).await;

    // 1. A polite rival: server-side apply without force. The operator
    // owns the field: 409 each time, nothing written.
    for _ in 0..ROUNDS {
        let err = deps
            .patch(
                "fixed",
                &PatchParams::apply("rival-scaler"),
                &Patch::Apply(replicas_body("fixed", 5)),
            )
            .await
            .expect_err("a non-forced apply of an owned field must conflict");
        assert!(
            matches!(&err, kube::Error::Api(s) if s.code == 409),
            "expected 409 Conflict, got {err}"
        );
    }
    assert_eq!(
        deps.get("fixed").await.unwrap().resource_version(),
        fixed_rv,
        "a conflicting apply changed the Deployment"
    );

    // 2. A rude rival, one change at a time: updates (as `kubectl scale
    // deployment` / an edit) and forced applies take the field; each time
    // the operator puts 2 back and owns it again.
    let mut reverts = Vec::new();
    for k in 0..ROUNDS {
        let n = 5 + (k % 3) as i32;
        if k % 2 == 0 {
            deps.patch(
                "fixed",
                &PatchParams {
                    field_manager: Some("rival-editor".into()),
                    ..PatchParams::default()
                },
                &Patch::Merge(json!({"spec": {"replicas": n}})),
            )
            .await
            .expect("rival update");
        } else {
            deps.patch(
                "fixed",
                &PatchParams::apply("rival-scaler").force(),
                &Patch::Apply(replicas_body("fixed", n)),
            )
            .await
            .expect("rival forced apply");
        }
        reverts.push(wait_replicas(&deps, "fixed", 2, MANAGER).await);
    }
    let one_by_one = op.metric(DEPLOYMENT_APPLIES).await - applies0;

    // 3. The same rival in a burst: changes back to back.
    let applies1 = op.metric(DEPLOYMENT_APPLIES).await;
    for k in 0..ROUNDS {
        deps.patch(
            "fixed",
            &PatchParams {
                field_manager: Some("rival-editor".into()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({"spec": {"replicas": 5 + (k % 3) as i32}})),
        )
        .await
        .expect("rival update");
    }
    wait_replicas(&deps, "fixed", 2, MANAGER).await;
    let burst = op.metric(DEPLOYMENT_APPLIES).await - applies1;

    // 4. The autoscaled app: the field is the HPA's; a rival's value
    // within min..max stays, and the operator writes no Deployment.
    let applies2 = op.metric(DEPLOYMENT_APPLIES).await;
    deps.patch(
        "scaled",
        &PatchParams {
            field_manager: Some("rival-editor".into()),
            ..PatchParams::default()
        },
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .expect("rival update");
    wait_until(
        "scaled's status follows the rival's 3 replicas",
        CONVERGE,
        || async {
            fleet
                .apps
                .get("scaled")
                .await
                .is_ok_and(|a| a.status.is_some_and(|s| s.replicas == Some(3)))
        },
    )
    .await;
    let autoscaled = op.metric(DEPLOYMENT_APPLIES).await - applies2;
    let last_rival_write = Instant::now();

    let (_, survey) = fleet.wait_converged(&mut op, CONVERGE).await;
    let after = last_rival_write.elapsed();
    let total = op.metric(DEPLOYMENT_APPLIES).await - applies0;
    let fixed = deps.get("fixed").await.unwrap();
    let scaled = deps.get("scaled").await.unwrap();
    eprintln!(
        "rival: {ROUNDS} conflicting applies -> 409; {ROUNDS} changes one by one -> \
         {one_by_one} operator applies (reverted in {:?}); burst of {ROUNDS} -> {burst}; \
         autoscaled -> {autoscaled}",
        reverts
    );
    assert!(
        (ROUNDS as f64..=2.0 * ROUNDS as f64).contains(&one_by_one),
        "one-by-one rival changes: {one_by_one} operator applies for {ROUNDS} changes"
    );
    assert!(
        (1.0..=ROUNDS as f64).contains(&burst),
        "a burst of {ROUNDS} rival changes: {burst} operator applies"
    );
    assert_eq!(
        autoscaled, 0.0,
        "the operator wrote the autoscaled Deployment"
    );
    assert_eq!(fixed.spec.replicas, Some(2));
    assert!(owns_replicas(&fixed, MANAGER));
    assert!(!owns_replicas(&fixed, "rival-scaler"));
    assert_eq!(scaled.spec.replicas, Some(3));
    assert!(!owns_replicas(&scaled, MANAGER));

    let idle = fleet.idle_and_clean(&survey, &mut op).await;
    record(
        "operator",
        "rival writer on a Deployment's replicas",
        "another field manager: 10 non-forced applies, 10 updates/forced applies one by \
         one, a burst of 10 updates, 1 update of the autoscaled app",
        start.elapsed(),
        &figures(2, after, &survey, idle, 0, total),
        &format!(
            "non-forced applies: 10 x 409, nothing written; one by one: {one_by_one} \
             operator applies for 10 changes; burst: {burst} for 10; autoscaled: \
             {autoscaled} (the HPA's field); no war, then no writes"
        ),
    );
}
