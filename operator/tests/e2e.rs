//! End-to-end: the real `corefit-operator` binary against the real
//! kube-apiserver 1.20.2 (tests/k8s/control-plane.sh). Each test gets its
//! own namespace and its own operator watching only that namespace. The only
//! stand-in is the test kubelet (see support/kubelet.rs): no container
//! runtime exists here, so it moves pod status the way a kubelet would.
//!
//! Needs COREFIT_TEST_KUBECONFIG; without it every test fails (no skip).

use std::time::Duration;

use corefit_operator::types::ClusterApp;
use corefit_test_support::k8s::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

const T: Duration = Duration::from_secs(60);

fn example(name: &str) -> ClusterApp {
    corefit_test_support::k8s::example(name)
}

fn app(name: &str, spec: serde_json::Value) -> ClusterApp {
    cluster_app(name, spec)
}

async fn get_deployment(deps: &Api<Deployment>, name: &str) -> Deployment {
    wait_for(&format!("Deployment {name}"), T, || async {
        deps.get_opt(name).await.ok().flatten()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn examples_make_deployments_and_services_and_print_columns() {
    let (client, ns) = setup("examples").await;
    let _op = Operator::start(&ns).await;
    let apps: Api<ClusterApp> = Api::namespaced(client.clone(), &ns);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let svcs: Api<Service> = Api::namespaced(client.clone(), &ns);

    // (file, name, replicas, mode, workers, port)
    let cases = [
        ("web-horizontal.yaml", "web", 3, "single", "1", 3000),
        ("api-vertical.yaml", "api", 2, "cluster", "4", 8080),
        ("worker-auto.yaml", "jobs", 2, "cluster", "2", 8000),
    ];
    for (file, ..) in &cases {
        apps.create(&PostParams::default(), &example(file))
            .await
            .expect(file);
    }
    for (file, name, replicas, mode, workers, port) in cases {
        let owner = apps.get(name).await.unwrap();
        let d = get_deployment(&deps, name).await;
        assert_eq!(d.spec.replicas, Some(replicas), "{file}");
        let env = env_of(&d);
        assert_eq!(env["COREFIT_MODE"], mode, "{file}");
        assert_eq!(env["COREFIT_WORKERS"], workers, "{file}");
        assert!(env.contains_key("COREFIT_ADMIN_PORT"), "{file}");
        let orefs = d.owner_references();
        assert_eq!(orefs.len(), 1);
        assert_eq!(orefs[0].uid, owner.uid().unwrap());
        assert_eq!(orefs[0].controller, Some(true));
        let s = wait_for(&format!("Service {name}"), T, || async {
            svcs.get_opt(name).await.ok().flatten()
        })
        .await;
        let sspec = s.spec.as_ref().unwrap();
        assert_eq!(sspec.ports.as_ref().unwrap()[0].port, port, "{file}");
        assert_eq!(
            sspec
                .selector
                .as_ref()
                .unwrap()
                .get("corefit.dev/app")
                .map(String::as_str),
            Some(name)
        );
        assert_eq!(s.owner_references()[0].uid, owner.uid().unwrap());
        // Managed by one field manager (plus, for the autoscaled app, the
        // one that held spec.replicas while handing it to the HPA).
        let managers: Vec<_> = d
            .managed_fields()
            .iter()
            .filter(|m| m.operation.as_deref() == Some("Apply"))
            .filter_map(|m| m.manager.clone())
            .filter(|m| m != "corefit-operator-handover")
            .collect();
        assert_eq!(managers, ["corefit-operator"], "{file}");
        let st = wait_for(&format!("status of {name}"), T, || async {
            apps.get(name)
                .await
                .ok()
                .and_then(|a| a.status)
                .filter(|s| s.mode.is_some())
        })
        .await;
        assert_eq!(st.mode.as_deref(), Some(mode));
        assert_eq!(
            st.workers_per_pod.map(|w| w.to_string()).as_deref(),
            Some(workers)
        );
        assert_eq!(
            st.selector.as_deref(),
            Some(format!("corefit.dev/app={name}").as_str())
        );
        assert!(
            st.reasons.iter().any(|r| r.starts_with("decision: ")),
            "{:?}",
            st.reasons
        );
    }
    let jobs = get_deployment(&deps, "jobs").await;
    let pod = jobs.spec.template.spec.as_ref().unwrap();
    assert_eq!(
        pod.init_containers.as_ref().unwrap()[0].name,
        "corefit-launcher"
    );
    assert_eq!(
        pod.containers[0].command.as_ref().unwrap()[..2],
        ["/corefit-bin/corefit", "--"]
    );

    // The printer columns, as `kubectl get clusterapps` asks for them.
    let req = http::Request::get(format!(
        "/apis/corefit.dev/v1alpha1/namespaces/{ns}/clusterapps"
    ))
    .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
    .body(Vec::new())
    .unwrap();
    let table: serde_json::Value =
        serde_json::from_str(&client.request_text(req).await.unwrap()).unwrap();
    let cols: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cols,
        ["Name", "MODE", "REPLICAS", "WORKERS", "READY", "AGE"]
    );
    let row = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cells"][0] == "api")
        .expect("api row");
    assert_eq!(row["cells"][1], "cluster");
    assert_eq!(row["cells"][2], 2);
    assert_eq!(row["cells"][3], 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn scale_rollout_recreate_ready_and_garbage_collection() {
    let (client, ns) = setup("lifecycle").await;
    kubelet::register_node(&client).await.expect("node");
    let kubelet = kubelet::run(client.clone(), &ns);
    let _op = Operator::start(&ns).await;
    let apps: Api<ClusterApp> = Api::namespaced(client.clone(), &ns);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let svcs: Api<Service> = Api::namespaced(client.clone(), &ns);
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);

    create_app(
        &apps,
        "shop",
        json!({"image": "shop:1", "resources": {"cpu": "1", "memory": "1Gi"},
                            "scaling": {"replicas": 2}}),
    )
    .await;

    // The test kubelet makes the pods ready; the status follows.
    let ready = wait_for("shop Ready=True with 2 ready pods", T, || async {
        let a = apps.get("shop").await.ok()?;
        let ok = condition(&a, "Ready").is_some_and(|c| c.0 == "True")
            && a.status.as_ref()?.ready_replicas == Some(2);
        ok.then_some(a)
    })
    .await;
    assert_eq!(condition(&ready, "Degraded").unwrap().0, "False");
    assert_eq!(condition(&ready, "Progressing").unwrap().0, "False");

    // kubectl scale: the scale subresource counts pods.
    let scale = apps.get_scale("shop").await.unwrap();
    assert_eq!(scale.spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(
        scale.status.as_ref().unwrap().selector.as_deref(),
        Some("corefit.dev/app=shop")
    );
    apps.patch_scale(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 4}})),
    )
    .await
    .unwrap();
    wait_until("Deployment scaled to 4", T, || async {
        deps.get("shop")
            .await
            .is_ok_and(|d| d.spec.replicas == Some(4))
    })
    .await;
    wait_until("status readyReplicas 4", T, || async {
        apps.get("shop").await.is_ok_and(|a| {
            a.status.as_ref().and_then(|s| s.ready_replicas) == Some(4)
                && condition(&a, "Ready").is_some_and(|c| c.0 == "True")
        })
    })
    .await;

    // A spec change rolls the Deployment; a changed decision is an event.
    let before = deps.get("shop").await.unwrap();
    apps.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"image": "shop:2", "resources": {"cpu": "3", "memory": "2Gi"}}}),
        ),
    )
    .await
    .unwrap();
    let rolled = wait_for("Deployment template updated", T, || async {
        let d = deps.get("shop").await.ok()?;
        let c = &d.spec.template.spec.as_ref()?.containers[0];
        (c.image.as_deref() == Some("shop:2")).then_some(d)
    })
    .await;
    assert!(rolled.metadata.generation > before.metadata.generation);
    assert_eq!(env_of(&rolled)["COREFIT_WORKERS"], "3");
    assert_eq!(env_of(&rolled)["COREFIT_MODE"], "cluster");
    wait_until("DecisionChanged event for 3 workers", T, || async {
        EventMatch::reason("DecisionChanged")
            .about("shop")
            .note("3 workers per pod")
            .seen(&events)
            .await
    })
    .await;
    wait_until("rollout done and Ready again", T, || async {
        apps.get("shop").await.is_ok_and(|a| {
            condition(&a, "Ready").is_some_and(|c| c.0 == "True")
                && a.status.as_ref().and_then(|s| s.workers_per_pod) == Some(3)
        })
    })
    .await;

    // Deleting the Deployment by hand gets it recreated.
    let old_uid = deps.get("shop").await.unwrap().uid();
    deps.delete("shop", &DeleteParams::default()).await.unwrap();
    wait_until("Deployment recreated", T, || async {
        deps.get_opt("shop")
            .await
            .ok()
            .flatten()
            .is_some_and(|d| d.uid() != old_uid && d.metadata.deletion_timestamp.is_none())
    })
    .await;

    // Deleting the app lets the garbage collector remove the children.
    apps.delete("shop", &DeleteParams::default()).await.unwrap();
    wait_until("Deployment and Service garbage-collected", T, || async {
        matches!(deps.get_opt("shop").await, Ok(None))
            && matches!(svcs.get_opt("shop").await, Ok(None))
    })
    .await;
    kubelet.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_specs_become_degraded_with_events_and_metrics() {
    let (client, ns) = setup("invalid").await;
    let mut op = Operator::start(&ns).await;
    let apps: Api<ClusterApp> = Api::namespaced(client.clone(), &ns);
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);

    // (name, spec, error reason, text the message must contain)
    let table = [
        ("no-image", json!({}), "MissingImage", "spec.image"),
        (
            "blank-image",
            json!({"image": "  "}),
            "MissingImage",
            "spec.image",
        ),
        (
            "mpw-above-mem",
            json!({"image": "a", "resources": {"memory": "256Mi"},
            "scaling": {"memoryPerWorker": "1Gi"}}),
            "MemoryPerWorkerAboveMemory",
            "spec.scaling.memoryPerWorker=1Gi",
        ),
        (
            "mpw-tiny",
            json!({"image": "a", "scaling": {"memoryPerWorker": "1Mi"}}),
            "MemoryPerWorkerTooSmall",
            "16Mi",
        ),
        (
            "zero-cpu",
            json!({"image": "a", "resources": {"cpu": "0"}}),
            "BadQuantity",
            "spec.resources.cpu",
        ),
        (
            "vertical-no-cpu",
            json!({"image": "a", "scaling": {"strategy": "Vertical"}}),
            "VerticalWithoutCpu",
            "spec.resources.cpu",
        ),
        (
            "horizontal-workers",
            json!({"image": "a", "scaling": {"strategy": "Horizontal", "workers": 4}}),
            "HorizontalWithWorkers",
            "spec.scaling.workers=4",
        ),
        (
            "zero-workers",
            json!({"image": "a", "scaling": {"workers": "0"}}),
            "BadWorkers",
            "spec.scaling.workers",
        ),
        (
            "min-above-max",
            json!({"image": "a", "scaling": {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}}),
            "AutoscalingBounds",
            "minReplicas=5",
        ),
        (
            "port-clash",
            json!({"image": "a", "port": 9901}),
            "AdminPortClash",
            "spec.launcher.adminPort=9901",
        ),
        (
            "reserved-env",
            json!({"image": "a", "env": [{"name": "COREFIT_WORKERS", "value": "9"}]}),
            "ReservedEnv",
            "COREFIT_WORKERS",
        ),
        (
            "dup-env",
            json!({"image": "a", "env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}),
            "DuplicateEnv",
            "spec.env",
        ),
        (
            "init-no-image",
            json!({"image": "a", "command": ["x"], "launcher": {"mode": "InitContainer"}}),
            "InitContainerWithoutImage",
            "spec.launcher.image",
        ),
        (
            "init-no-command",
            json!({"image": "a", "launcher": {"mode": "InitContainer", "image": "l"}}),
            "InitContainerWithoutCommand",
            "spec.command",
        ),
    ];
    for (name, spec, ..) in &table {
        apps.create(&PostParams::default(), &app(name, spec.clone()))
            .await
            .unwrap_or_else(|e| panic!("{name} should pass the schema: {e}"));
    }
    // A valid app beside them still converges.
    create_app(&apps, "fine", json!({"image": "ok:1"})).await;

    for (name, _, reason, text) in &table {
        let a = wait_for(&format!("{name} Degraded"), T, || async {
            let a = apps.get(name).await.ok()?;
            condition(&a, "Degraded")
                .filter(|c| c.0 == "True")
                .map(|_| a)
        })
        .await;
        let (_, r, msg) = condition(&a, "Degraded").unwrap();
        assert_eq!(&r, reason, "{name}: {msg}");
        assert!(
            msg.contains(text),
            "{name}: message {msg:?} should name {text:?}"
        );
        assert_eq!(condition(&a, "Progressing").unwrap().0, "False", "{name}");
        wait_until(&format!("{name} InvalidSpec event"), T, || async {
            EventMatch::reason("InvalidSpec")
                .about(name)
                .warning()
                .note(text)
                .seen(&events)
                .await
        })
        .await;
        let sample = format!("corefit_operator_reconcile_errors_total{{reason=\"{reason}\"}}");
        assert!(
            op.metric(&sample).await >= 1.0,
            "{name}: {sample} not counted"
        );
    }
    wait_condition(&apps, "fine", NOT_DEGRADED, T).await;
    assert!(op.alive(), "operator died:\n{}", op.log_text());
    assert_eq!(http_get(&op.addr, "/healthz").await.map(|r| r.0), Some(200));
    assert!(!op.log_text().contains("panicked"), "{}", op.log_text());

    // Requeued with a growing backoff, not a hot loop: over 5 seconds, 15
    // broken apps cause only a handful of retries, and no writes at all
    // (the condition and the event are already there).
    let m0 = op.metrics().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let m1 = op.metrics().await;
    let retries = metric_sum(&m1, RECONCILE_ERRORS) - metric_sum(&m0, RECONCILE_ERRORS);
    assert!(
        retries <= 2.0 * table.len() as f64,
        "{retries} retries in 5 s: a hot loop"
    );
    assert_eq!(
        metric_sum(&m1, API_WRITES),
        metric_sum(&m0, API_WRITES),
        "retries of an unchanged invalid spec must not write"
    );

    // Fixing the spec clears Degraded.
    apps.patch(
        "no-image",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"image": "fixed:1"}})),
    )
    .await
    .unwrap();
    wait_condition(&apps, "no-image", NOT_DEGRADED, T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_hpa_drives_replicas_through_the_scale_subresource() {
    let (client, ns) = setup("hpa").await;
    let _op = Operator::start(&ns).await;
    let apps: Api<ClusterApp> = Api::namespaced(client.clone(), &ns);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    create_app(
        &apps,
        "scaled",
        json!({"image": "s:1", "resources": {"cpu": "500m"}, "scaling": {"replicas": 1}}),
    )
    .await;
    wait_until("status selector set", T, || async {
        apps.get("scaled")
            .await
            .is_ok_and(|a| a.status.and_then(|s| s.selector).is_some())
    })
    .await;
    // The real HPA controller (kube-controller-manager) reads the scale
    // subresource and, below minReplicas, sets the replicas through it
    // (no metrics are needed for that).
    let hpas: Api<k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler> =
        Api::namespaced(client.clone(), &ns);
    let hpa = serde_json::from_value(json!({
        "metadata": {"name": "scaled"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "corefit.dev/v1alpha1", "kind": "ClusterApp", "name": "scaled"},
            "minReplicas": 3, "maxReplicas": 5, "targetCPUUtilizationPercentage": 80
        }
    }))
    .unwrap();
    hpas.create(&PostParams::default(), &hpa).await.unwrap();
    wait_until(
        "HPA raised the ClusterApp to 3 and the Deployment followed",
        Duration::from_secs(90),
        || async {
            let app_replicas = apps
                .get("scaled")
                .await
                .ok()
                .and_then(|a| a.spec.scaling.replicas);
            let dep_replicas = deps.get("scaled").await.ok().and_then(|d| d.spec.replicas);
            app_replicas == Some(3) && dep_replicas == Some(3)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_failures_are_events_metrics_and_retried() {
    let (client, ns) = setup("failure").await;
    // A real refusal from the API server: this namespace may hold no Service.
    refuse_services(&client, &ns, T).await;
    let op = Operator::start(&ns).await;
    let apps: Api<ClusterApp> = Api::namespaced(client.clone(), &ns);
    let svcs: Api<Service> = Api::namespaced(client.clone(), &ns);
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    create_app(&apps, "blocked", json!({"image": "b:1"})).await;
    wait_until("ApplyFailed event naming the Service", T, || async {
        EventMatch::reason("ApplyFailed")
            .warning()
            .note("Service blocked")
            .seen(&events)
            .await
    })
    .await;
    wait_until("ApplyFailed counted", T, || async {
        op.metric("corefit_operator_reconcile_errors_total{reason=\"ApplyFailed\"}")
            .await
            >= 1.0
    })
    .await;
    // Lift the refusal: a retry (after the backoff) converges.
    allow_services(&client, &ns).await;
    wait_until("Service created on retry", T, || async {
        matches!(svcs.get_opt("blocked").await, Ok(Some(_)))
    })
    .await;
    wait_condition(&apps, "blocked", NOT_DEGRADED, T).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_and_idle_make_no_writes() {
    let (client, ns) = setup("idle").await;
    kubelet::register_node(&client).await.expect("node");
    let kubelet = kubelet::run(client.clone(), &ns);
    let mut op = Operator::start(&ns).await;
    let apps: Api<ClusterApp> = Api::namespaced(client.clone(), &ns);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let svcs: Api<Service> = Api::namespaced(client.clone(), &ns);
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    for file in [
        "web-horizontal.yaml",
        "api-vertical.yaml",
        "worker-auto.yaml",
    ] {
        apps.create(&PostParams::default(), &example(file))
            .await
            .unwrap();
    }
    for name in ["web", "api", "jobs"] {
        wait_condition(&apps, name, READY, T).await;
    }
    // Settled: the Deployment controller has finished its own status
    // writes (its last one marks the rollout complete).
    for name in ["web", "api", "jobs"] {
        wait_until(&format!("{name} rollout complete"), T, || async {
            deps.get(name).await.is_ok_and(|d| {
                let st = d.status.unwrap_or_default();
                st.observed_generation == d.metadata.generation
                    && st.available_replicas == d.spec.replicas
                    && st.conditions.iter().flatten().any(|c| {
                        c.type_.as_deref() == Some("Progressing")
                            && c.reason.as_deref() == Some("NewReplicaSetAvailable")
                    })
            })
        })
        .await;
    }
    kubelet.abort();

    async fn versions(
        apps: &Api<ClusterApp>,
        deps: &Api<Deployment>,
        svcs: &Api<Service>,
        events: &Api<Event>,
    ) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        v.extend(tagged("app", list_all(apps).await));
        v.extend(tagged("deploy", list_all(deps).await));
        v.extend(tagged("svc", list_all(svcs).await));
        // The operator's own events: with no metrics server here, the
        // real HPA controller records its own warnings about the
        // autoscaled app, which are no writes of ours.
        let ours = list_all(events).await.into_iter().filter(by_operator);
        v.extend(tagged("event", ours));
        v
    }
    let before = versions(&apps, &deps, &svcs, &events).await;
    assert_eq!(before.iter().filter(|v| v.starts_with("app/")).count(), 3);

    // SIGTERM: a clean exit, promptly.
    let status = op.terminate(Duration::from_secs(10)).await;
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        op.log_text()
    );

    // A new operator reconciles all three and writes nothing.
    let op = Operator::start(&ns).await;
    wait_until("restarted operator reconciled the 3 apps", T, || async {
        op.metric(RECONCILES).await >= 3.0
    })
    .await;
    let after_restart = versions(&apps, &deps, &svcs, &events).await;
    assert_eq!(
        after_restart, before,
        "the restart wrote to objects it had reconciled"
    );
    assert_eq!(metric_sum(&op.metrics().await, API_WRITES), 0.0);

    // 30 idle seconds: no writes at all.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let idle = versions(&apps, &deps, &svcs, &events).await;
    assert_eq!(idle, before, "writes while idle");
    let m = op.metrics().await;
    assert_eq!(metric_sum(&m, API_WRITES), 0.0, "{m}");
    assert_eq!(metric_sum(&m, RECONCILE_ERRORS), 0.0, "{m}");
}

fn owns_replicas(d: &Deployment, manager: &str) -> bool {
    corefit_operator::autoscale::owns_replicas(d, manager)
}

#[tokio::test(flavor = "multi_thread")]
async fn autoscaling_and_disruption_budget_follow_the_spec() {
    let (client, ns) = setup("autoscale").await;
    let op = Operator::start(&ns).await;
    let apps: Api<ClusterApp> = Api::namespaced(client.clone(), &ns);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    // Kubernetes 1.20 serves autoscaling/v2beta2 and policy/v1beta1 only:
    // discovery must pick those (autoscaling/v2 and policy/v1 are 404 here).
    let hpas = dynamic(
        &client,
        &ns,
        "autoscaling/v2beta2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
    );
    let pdbs = dynamic(
        &client,
        &ns,
        "policy/v1beta1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
    );
    let status = |name: &'static str| {
        let apps = apps.clone();
        async move { apps.get(name).await.ok().and_then(|a| a.status) }
    };
    // Who owns the Deployment's replica count, as the status says.
    let owner =
        move |name: &'static str| async move { status(name).await.and_then(|s| s.replicas_owner) };

    // 1 replica: no budget, no autoscaler; the ClusterApp owns the count.
    create_app(
        &apps,
        "web",
        json!({"image": "w:1", "resources": {"cpu": "500m"}, "scaling": {"replicas": 1}}),
    )
    .await;
    wait_until("replicasOwner ClusterApp", T, || async {
        owner("web").await.as_deref() == Some("ClusterApp")
    })
    .await;
    assert!(pdbs.get_opt("web").await.unwrap().is_none());
    assert!(hpas.get_opt("web").await.unwrap().is_none());

    // 3 replicas: a budget appears, in the version the cluster serves.
    apps.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"scaling": {"replicas": 3}}})),
    )
    .await
    .unwrap();
    let pdb = wait_for("PodDisruptionBudget (policy/v1beta1)", T, || async {
        pdbs.get_opt("web").await.ok().flatten()
    })
    .await;
    assert_eq!(pdb.data["spec"]["maxUnavailable"], 1);
    assert_eq!(
        pdb.data["spec"]["selector"]["matchLabels"]["corefit.dev/app"],
        "web"
    );
    let app_uid = apps.get("web").await.unwrap().uid().unwrap();
    assert_eq!(
        pdb.metadata.owner_references.as_ref().unwrap()[0].uid,
        app_uid
    );
    wait_until(
        "Deployment at 3, replicas applied by the operator",
        T,
        || async {
            deps.get("web")
                .await
                .is_ok_and(|d| d.spec.replicas == Some(3) && owns_replicas(&d, "corefit-operator"))
        },
    )
    .await;

    // Autoscaling on: an HPA (autoscaling/v2beta2) on the Deployment; the
    // operator lets go of spec.replicas without it dropping to 1.
    apps.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"scaling": {"autoscaling": {"minReplicas": 2, "maxReplicas": 5, "targetCPUUtilizationPercentage": 60}}}})),
    )
    .await
    .unwrap();
    let hpa = wait_for(
        "HorizontalPodAutoscaler (autoscaling/v2beta2)",
        T,
        || async { hpas.get_opt("web").await.ok().flatten() },
    )
    .await;
    assert_eq!(
        hpa.types.as_ref().unwrap().api_version,
        "autoscaling/v2beta2"
    );
    assert_eq!(
        hpa.data["spec"]["scaleTargetRef"],
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"})
    );
    assert_eq!(
        (
            hpa.data["spec"]["minReplicas"].clone(),
            hpa.data["spec"]["maxReplicas"].clone()
        ),
        (json!(2), json!(5))
    );
    assert_eq!(
        hpa.data["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        60
    );
    assert_eq!(
        hpa.metadata.owner_references.as_ref().unwrap()[0].uid,
        app_uid
    );
    wait_until("replicasOwner HorizontalPodAutoscaler", T, || async {
        owner("web").await.as_deref() == Some("HorizontalPodAutoscaler")
    })
    .await;
    let d = deps.get("web").await.unwrap();
    assert!(
        !owns_replicas(&d, "corefit-operator"),
        "{:?}",
        d.metadata.managed_fields
    );
    assert_eq!(d.spec.replicas, Some(3), "the hand-over kept the count");

    // The real HPA controller raises the Deployment to a new minimum of 4
    // (below minReplicas it needs no metrics); the operator, whose spec
    // still says 3, leaves it there and reports 4.
    apps.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"scaling": {"autoscaling": {"minReplicas": 4}}}})),
    )
    .await
    .unwrap();
    wait_until(
        "the HPA controller scaled the Deployment to 4",
        Duration::from_secs(90),
        || async {
            deps.get("web")
                .await
                .is_ok_and(|d| d.spec.replicas == Some(4))
        },
    )
    .await;
    wait_until("status.replicas follows the HPA", T, || async {
        status("web").await.and_then(|s| s.replicas) == Some(4)
    })
    .await;
    let writes_before = op
        .metric("corefit_operator_api_writes_total{kind=\"Deployment\",verb=\"apply\"}")
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let d = deps.get("web").await.unwrap();
    assert_eq!(
        d.spec.replicas,
        Some(4),
        "the operator undid the HPA's count"
    );
    assert!(!owns_replicas(&d, "corefit-operator"));
    assert_eq!(
        op.metric("corefit_operator_api_writes_total{kind=\"Deployment\",verb=\"apply\"}")
            .await,
        writes_before,
        "Deployment writes while the HPA scaled"
    );
    assert_eq!(
        apps.get("web").await.unwrap().spec.scaling.replicas,
        Some(3)
    );

    // Autoscaling off, 1 replica: the HPA and the budget go away, the
    // operator owns the count again.
    apps.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"scaling": {"autoscaling": null, "replicas": 1}}})),
    )
    .await
    .unwrap();
    wait_until("HPA and PDB deleted", T, || async {
        hpas.get_opt("web").await.is_ok_and(|h| h.is_none())
            && pdbs.get_opt("web").await.is_ok_and(|p| p.is_none())
    })
    .await;
    wait_until(
        "Deployment back to 1, owned by the ClusterApp",
        T,
        || async {
            deps.get("web")
                .await
                .is_ok_and(|d| d.spec.replicas == Some(1) && owns_replicas(&d, "corefit-operator"))
                && owner("web").await.as_deref() == Some("ClusterApp")
        },
    )
    .await;
    let m = op.metrics().await;
    assert_eq!(metric_sum(&m, RECONCILE_ERRORS), 0.0, "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn launcher_injection_shapes_the_pod() {
    let (client, ns) = setup("inject").await;
    let _op = Operator::start(&ns).await;
    let apps: Api<ClusterApp> = Api::namespaced(client.clone(), &ns);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let cmd = json!(["node", "server.js"]);
    create_app(&apps, "plain", json!({"image": "node:22", "command": cmd})).await;
    create_app(
        &apps,
        "injected",
        json!({"image": "node:22", "command": cmd,
                   "launcher": {"mode": "InitContainer", "image": "corefit-launcher:0.1"}}),
    )
    .await;
    let plain = get_deployment(&deps, "plain").await;
    let pod = plain.spec.template.spec.unwrap();
    assert!(pod.init_containers.is_none());
    assert!(pod.volumes.is_none());
    assert!(pod.containers[0].volume_mounts.is_none());
    assert_eq!(
        pod.containers[0].command.as_ref().unwrap(),
        &["corefit", "--", "node", "server.js"]
    );

    let injected = get_deployment(&deps, "injected").await;
    let pod = injected.spec.template.spec.unwrap();
    let (init, vol) = launcher_init(&pod, "corefit-launcher:0.1");
    let mount = |c: &k8s_openapi::api::core::v1::Container| {
        let m = &c.volume_mounts.as_ref().unwrap()[0];
        (m.name.clone(), m.mount_path.clone())
    };
    assert_eq!(mount(init), (vol.name.clone(), "/corefit-bin".to_owned()));
    assert_eq!(
        mount(&pod.containers[0]),
        (vol.name.clone(), "/corefit-bin".to_owned())
    );
    assert_eq!(
        pod.containers[0].command.as_ref().unwrap(),
        &["/corefit-bin/corefit", "--", "node", "server.js"]
    );
}
