//! Fixtures of the operator's tests: the control plane's kubeconfig (from
//! `COREFIT_TEST_KUBECONFIG`, written by tests/k8s/control-plane.sh), the
//! CRD, a namespace per test, the operator run as its real binary,
//! ClusterApp builders, reading objects back, and waiting on conditions
//! with deadlines (async).

pub mod control_plane;
pub mod kubelet;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Namespace, PodSpec, ResourceQuota, Volume};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client, Config};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

pub use crate::http::{free_port, http_get, metric_sum, metric_value};
pub use crate::repo_root;

pub const KUBECONFIG_ENV: &str = "COREFIT_TEST_KUBECONFIG";

/// The operator's metric families the tests read.
pub const API_WRITES: &str = "corefit_operator_api_writes_total";
pub const RECONCILES: &str = "corefit_operator_reconciles_total";
pub const RECONCILE_ERRORS: &str = "corefit_operator_reconcile_errors_total";
pub const LEADER: &str = "corefit_operator_leader";

/// The kubeconfig of the test control plane. Missing is a failure, never
/// a skip: these tests are part of the test command.
pub fn kubeconfig_path() -> PathBuf {
    match std::env::var_os(KUBECONFIG_ENV) {
        Some(p) if !p.is_empty() => {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "{KUBECONFIG_ENV}={} does not exist: is the control plane up? \
                 run: eval \"$(tests/k8s/control-plane.sh start)\"",
                p.display()
            );
            p
        }
        _ => panic!(
            "{KUBECONFIG_ENV} is not set: these tests need the real control plane. \
             Run tests/k8s/build-k8s.sh, then eval \"$(tests/k8s/control-plane.sh start)\", \
             then cargo test -p corefit-operator"
        ),
    }
}

pub async fn client() -> Client {
    let path = kubeconfig_path();
    let kc = Kubeconfig::read_from(&path).expect("read kubeconfig");
    let mut cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    cfg.read_timeout = Some(Duration::from_secs(60));
    Client::try_from(cfg).expect("client")
}

/// Applies crds/clusterapp.yaml (server-side) and waits until it is served.
pub async fn install_crd(client: &Client) {
    let text = std::fs::read_to_string(repo_root().join("crds/clusterapp.yaml")).expect("crd file");
    let crd: CustomResourceDefinition = serde_yaml::from_str(&text).expect("crd yaml");
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.patch(
        "clusterapps.corefit.dev",
        &PatchParams::apply("corefit-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply CRD");
    wait_until("CRD Established", Duration::from_secs(30), || async {
        api.get("clusterapps.corefit.dev")
            .await
            .ok()
            .and_then(|c| c.status)
            .and_then(|s| s.conditions)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            })
    })
    .await;
}

/// A fresh namespace named after the test.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let name = format!(
        "{prefix}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 1_000_000_000
    );
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
    // Pods need the default ServiceAccount, made by the controller-manager.
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), &name);
    wait_until(
        "default ServiceAccount",
        Duration::from_secs(30),
        || async { sas.get_opt("default").await.ok().flatten().is_some() },
    )
    .await;
    name
}

/// Polls `check` until it returns true; panics naming `what` after `deadline`.
pub async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `get` until it yields `Some`; panics naming `what` after `deadline`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut get: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = get().await {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The real operator binary, watching one namespace.
#[derive(Debug)]
pub struct Operator {
    child: Option<Child>,
    pub addr: String,
    pub log: PathBuf,
}

impl Operator {
    pub async fn start(namespace: &str) -> Operator {
        Operator::start_with(namespace, &[]).await
    }

    /// A candidate for the leader Lease `corefit-operator` in `namespace`
    /// (leader election on, `lease_secs` long), as pod `identity`.
    pub async fn candidate(namespace: &str, identity: &str, lease_secs: u64) -> Operator {
        let secs = lease_secs.to_string();
        Operator::start_with(
            namespace,
            &[
                ("COREFIT_OPERATOR_LEADER_ELECTION", "true"),
                ("COREFIT_OPERATOR_LEASE_NAME", "corefit-operator"),
                ("COREFIT_OPERATOR_LEASE_DURATION", &secs),
                ("POD_NAMESPACE", namespace),
                ("POD_NAME", identity),
            ],
        )
        .await
    }

    /// Two candidates in `namespace`: `op-a`, once it leads, and `op-b`,
    /// started after it (a standby).
    pub async fn leader_and_standby(namespace: &str, lease_secs: u64) -> (Operator, Operator) {
        let a = Operator::candidate(namespace, "op-a", lease_secs).await;
        a.wait_leading("op-a", Duration::from_secs(30)).await;
        let b = Operator::candidate(namespace, "op-b", lease_secs).await;
        (a, b)
    }

    /// Waits (within `limit`) until this operator holds the Lease.
    pub async fn wait_leading(&self, who: &str, limit: Duration) {
        wait_until(&format!("{who} leads"), limit, || async {
            self.metric(LEADER).await == 1.0
        })
        .await;
    }

    /// Like [`Operator::start`], with extra environment.
    pub async fn start_with(namespace: &str, env: &[(&str, &str)]) -> Operator {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let log = std::env::temp_dir().join(format!("corefit-operator-{namespace}-{port}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(crate::target_bin("corefit-operator"))
            .env("KUBECONFIG", kubeconfig_path())
            .env("COREFIT_OPERATOR_NAMESPACE", namespace)
            .env("COREFIT_OPERATOR_METRICS_ADDR", &addr)
            .env("COREFIT_OPERATOR_LOG", "info,kube=warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("spawn corefit-operator");
        let op = Operator {
            child: Some(child),
            addr,
            log,
        };
        let a = op.addr.clone();
        wait_until("operator /readyz", Duration::from_secs(30), || {
            let a = a.clone();
            async move {
                http_get(&a, "/readyz")
                    .await
                    .is_some_and(|(code, _)| code == 200)
            }
        })
        .await;
        op
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The exit status, once it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// SIGKILL (no chance to release anything), and reaps it.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        let _ = child.wait();
    }

    /// Sends SIGTERM and waits for the exit (up to `deadline`).
    pub async fn terminate(&mut self, deadline: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
        let start = Instant::now();
        loop {
            if let Some(st) = child.try_wait().expect("wait") {
                return st;
            }
            if start.elapsed() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("operator did not exit within {deadline:?} of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn metrics(&self) -> String {
        http_get(&self.addr, "/metrics")
            .await
            .map(|(_, body)| body)
            .unwrap_or_default()
    }

    /// The value of one sample line (`name{labels}`), 0 when absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        metric_value(&self.metrics().await, sample)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A connected client, the CRD installed, and a fresh namespace.
pub async fn setup(prefix: &str) -> (Client, String) {
    let client = client().await;
    install_crd(&client).await;
    let ns = namespace(&client, prefix).await;
    (client, ns)
}

/// A ClusterApp, built in steps:
/// `ClusterAppBuilder::new("web").spec(json!({"image": "x:1"})).build()`.
#[derive(Debug, Clone)]
pub struct ClusterAppBuilder {
    metadata: serde_json::Map<String, Value>,
    spec: Value,
}

impl ClusterAppBuilder {
    /// Named `name`, with an empty spec.
    pub fn new(name: &str) -> ClusterAppBuilder {
        let mut metadata = serde_json::Map::new();
        metadata.insert("name".into(), json!(name));
        ClusterAppBuilder {
            metadata,
            spec: json!({}),
        }
    }

    pub fn spec(mut self, spec: Value) -> ClusterAppBuilder {
        self.spec = spec;
        self
    }

    /// One metadata field (`namespace`, `uid`, `generation`, `labels`...).
    pub fn meta(mut self, field: &str, value: Value) -> ClusterAppBuilder {
        self.metadata.insert(field.into(), value);
        self
    }

    /// The object, typed by the caller (the operator's `ClusterApp`).
    pub fn build<T: DeserializeOwned>(self) -> T {
        serde_json::from_value(json!({
            "apiVersion": "corefit.dev/v1alpha1",
            "kind": "ClusterApp",
            "metadata": self.metadata,
            "spec": self.spec,
        }))
        .expect("a ClusterApp")
    }
}

/// A ClusterApp named `name` with `spec`.
pub fn cluster_app<T: DeserializeOwned>(name: &str, spec: Value) -> T {
    ClusterAppBuilder::new(name).spec(spec).build()
}

/// Creates the ClusterApp `name` with `spec` through `api`.
pub async fn create_app<K>(api: &Api<K>, name: &str, spec: Value) -> K
where
    K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    api.create(&PostParams::default(), &cluster_app(name, spec))
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"))
}

/// One of `examples/*.yaml`.
pub fn example<T: DeserializeOwned>(name: &str) -> T {
    let text = std::fs::read_to_string(repo_root().join("examples").join(name)).expect("example");
    serde_yaml::from_str(&text).expect("example parses")
}

/// The first container's environment (name -> value).
pub fn env_of(d: &Deployment) -> BTreeMap<String, String> {
    d.spec.template.spec.as_ref().unwrap().containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect()
}

/// A condition of a ClusterApp's status: (status, reason, message).
pub fn condition<T: Serialize>(app: &T, type_: &str) -> Option<(String, String, String)> {
    let v = serde_json::to_value(app).ok()?;
    let c = v["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?;
    let text = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
    Some((text("status"), text("reason"), text("message")))
}

/// An API for any kind by its apiVersion, kind and plural.
pub fn dynamic(
    client: &Client,
    ns: &str,
    api_version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    Api::namespaced_with(client.clone(), ns, &ar)
}

/// A ResourceQuota that refuses every Service in `ns` (a real refusal
/// from the API server), once the quota is active.
pub async fn refuse_services(client: &Client, ns: &str, deadline: Duration) {
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), ns);
    let quota = serde_json::from_value(json!({
        "metadata": {"name": "no-services"}, "spec": {"hard": {"count/services": "0"}}
    }))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    wait_until("quota active", deadline, || async {
        quotas
            .get("no-services")
            .await
            .is_ok_and(|q| q.status.and_then(|s| s.hard).is_some())
    })
    .await;
}

/// Lifts [`refuse_services`].
pub async fn allow_services(client: &Client, ns: &str) {
    Api::<ResourceQuota>::namespaced(client.clone(), ns)
        .delete("no-services", &DeleteParams::default())
        .await
        .unwrap();
}

/// The last `n` lines of a log, for failure messages.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The launcher's init container of an injected pod (it copies /corefit
/// from `image` into an emptyDir volume) and that volume, checked.
pub fn launcher_init<'a>(pod: &'a PodSpec, image: &str) -> (&'a Container, &'a Volume) {
    let init = &pod.init_containers.as_ref().unwrap()[0];
    assert_eq!(init.image.as_deref(), Some(image));
    assert_eq!(
        init.command.as_ref().unwrap(),
        &["cp", "/corefit", "/corefit-bin/corefit"]
    );
    let vol = &pod.volumes.as_ref().unwrap()[0];
    assert!(vol.empty_dir.is_some());
    (init, vol)
}

/// Every object `api` lists (panics when the list fails).
pub async fn list_all<K>(api: &Api<K>) -> Vec<K>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.list(&kube::api::ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("list: {e}"))
        .items
}

/// `KIND/NAME@RESOURCEVERSION` of each object: a write changes its line.
pub fn tagged<K: kube::Resource>(kind: &str, objects: impl IntoIterator<Item = K>) -> Vec<String> {
    objects
        .into_iter()
        .map(|o| {
            let m = o.meta();
            format!(
                "{kind}/{}@{}",
                m.name.clone().unwrap_or_default(),
                m.resource_version.clone().unwrap_or_default()
            )
        })
        .collect()
}

/// An event the operator wrote (not the HPA controller's, say).
pub fn by_operator(e: &Event) -> bool {
    e.reporting_controller.as_deref() == Some("corefit.dev/corefit-operator")
}

/// Whether the object `name` has condition `type_` at `status` right now.
pub async fn has_condition<K>(api: &Api<K>, name: &str, type_: &str, status: &str) -> bool
where
    K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    api.get(name)
        .await
        .is_ok_and(|a| condition(&a, type_).is_some_and(|c| c.0 == status))
}

/// A condition and its status, for [`wait_condition`].
pub const NOT_DEGRADED: (&str, &str) = ("Degraded", "False");
pub const READY: (&str, &str) = ("Ready", "True");

/// Waits (up to `deadline`) until [`has_condition`].
pub async fn wait_condition<K>(
    api: &Api<K>,
    name: &str,
    (type_, status): (&str, &str),
    deadline: Duration,
) where
    K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let what = format!("{name}: condition {type_} {status}");
    wait_until(&what, deadline, || has_condition(api, name, type_, status)).await;
}

/// An Event to look for, built in steps:
/// `EventMatch::reason("InvalidSpec").about("web").warning().note("spec.port")`.
#[derive(Debug, Clone, Default)]
pub struct EventMatch {
    reason: String,
    about: Option<String>,
    warning: bool,
    note: Option<String>,
}

impl EventMatch {
    /// Events with this reason.
    pub fn reason(reason: &str) -> EventMatch {
        EventMatch {
            reason: reason.to_owned(),
            ..EventMatch::default()
        }
    }

    /// ...about the object named `name`.
    pub fn about(mut self, name: &str) -> EventMatch {
        self.about = Some(name.to_owned());
        self
    }

    /// ...of type Warning.
    pub fn warning(mut self) -> EventMatch {
        self.warning = true;
        self
    }

    /// ...whose note contains `text`.
    pub fn note(mut self, text: &str) -> EventMatch {
        self.note = Some(text.to_owned());
        self
    }

    pub fn matches(&self, e: &Event) -> bool {
        let about = e.regarding.as_ref().and_then(|r| r.name.as_deref());
        e.reason.as_deref() == Some(self.reason.as_str())
            && self.about.as_deref().is_none_or(|name| about == Some(name))
            && (!self.warning || e.type_.as_deref() == Some("Warning"))
            && self
                .note
                .as_deref()
                .is_none_or(|text| e.note.as_deref().is_some_and(|n| n.contains(text)))
    }

    /// Whether `events` lists a matching one right now.
    pub async fn seen(&self, events: &Api<Event>) -> bool {
        events
            .list(&kube::api::ListParams::default())
            .await
            .is_ok_and(|l| l.items.iter().any(|e| self.matches(e)))
    }
}
