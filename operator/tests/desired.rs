//! The pure core, with no API server: `desired()` on the repository's
//! examples and on each strategy, `check()` on invalid specs, and
//! `next_status()` on Deployment states.

use corefit_operator::decide::{ClusterInfo, Scaling};
use corefit_operator::desired::desired;
use corefit_operator::status::{next_status, Outcome};
use corefit_operator::types::{ClusterApp, ClusterAppStatus};
use corefit_operator::validate::check;
use corefit_plan::facts::Hint;
use corefit_plan::{plan_for_pod, resolve, FlagValues, Plan, Platform, PlatformKind, PodResources};
use corefit_test_support::k8s::{env_of, launcher_init, ClusterAppBuilder};
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::json;

fn app(spec: serde_json::Value) -> ClusterApp {
    ClusterAppBuilder::new("a")
        .meta("namespace", json!("ns"))
        .meta("uid", json!("u-1"))
        .meta("generation", json!(3))
        .spec(spec)
        .build()
}

fn example(file: &str) -> ClusterApp {
    let mut a: ClusterApp = corefit_test_support::k8s::example(file);
    a.metadata.namespace = Some("ns".into());
    a.metadata.uid = Some("u-1".into());
    a
}

fn env(d: &Deployment, name: &str) -> String {
    env_of(d)
        .remove(name)
        .unwrap_or_else(|| panic!("{name} not set"))
}

#[test]
fn strategies_choose_workers_and_scaling() {
    let info = ClusterInfo {
        node_cpus: 16,
        ..ClusterInfo::default()
    };
    // (spec, mode, workers, scaling)
    let cases = [
        // Horizontal: 1 worker whatever the CPUs.
        (
            json!({"image": "i", "resources": {"cpu": "8", "memory": "8Gi"}, "scaling": {"strategy": "Horizontal"}}),
            "single",
            1,
            Scaling::Horizontal,
        ),
        // Vertical: floor(CPUs)...
        (
            json!({"image": "i", "resources": {"cpu": "4.5", "memory": "8Gi"}, "scaling": {"strategy": "Vertical"}}),
            "cluster",
            4,
            Scaling::Vertical,
        ),
        // ...bounded by memory (1Gi / 512Mi = 2)...
        (
            json!({"image": "i", "resources": {"cpu": "8", "memory": "1Gi"}, "scaling": {"strategy": "Vertical"}}),
            "cluster",
            2,
            Scaling::Vertical,
        ),
        // ...and by the node.
        (
            json!({"image": "i", "resources": {"cpu": "64", "memory": "64Gi"}, "scaling": {"strategy": "Vertical"}}),
            "cluster",
            16,
            Scaling::Vertical,
        ),
        // Auto with no CPU limit: the host's cores are not the pod's.
        (json!({"image": "i"}), "single", 1, Scaling::Horizontal),
        // Auto under 2 CPUs: one process, more pods.
        (
            json!({"image": "i", "resources": {"cpu": "1500m"}}),
            "single",
            1,
            Scaling::Horizontal,
        ),
        // Auto with 3 CPUs: 3 workers, vertical.
        (
            json!({"image": "i", "resources": {"cpu": "3", "memory": "4Gi"}}),
            "cluster",
            3,
            Scaling::Vertical,
        ),
        // Auto with 4 CPUs but memory for 1 worker at 1Gi each: single.
        (
            json!({"image": "i", "resources": {"cpu": "4", "memory": "1Gi"}, "scaling": {"memoryPerWorker": "1Gi"}}),
            "single",
            1,
            Scaling::Horizontal,
        ),
        // An explicit count above the CPUs is capped.
        (
            json!({"image": "i", "resources": {"cpu": "2"}, "scaling": {"workers": 8}}),
            "cluster",
            2,
            Scaling::Vertical,
        ),
        (
            json!({"image": "i", "resources": {"cpu": "4"}, "scaling": {"workers": "3"}}),
            "cluster",
            3,
            Scaling::Vertical,
        ),
    ];
    for (spec, mode, workers, scaling) in cases {
        let d = desired(&app(spec.clone()), &info).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(
            d.decision.mode.as_str(),
            mode,
            "{spec}: {:?}",
            d.decision.reasons
        );
        assert_eq!(
            d.decision.workers, workers,
            "{spec}: {:?}",
            d.decision.reasons
        );
        assert_eq!(d.decision.scaling, scaling, "{spec}");
        assert_eq!(env(&d.deployment, "COREFIT_MODE"), mode);
        assert_eq!(env(&d.deployment, "COREFIT_WORKERS"), workers.to_string());
        assert_eq!(env(&d.deployment, "COREFIT_SCALING"), scaling.as_str());
        let last = d.decision.reasons.last().unwrap();
        assert!(last.starts_with("decision: "), "{last}");
        assert!(last.contains(scaling.as_str()), "{last}");
        // The launcher in the pod, reading the pod's environment, decides
        // the same (its plan is what `corefit plan --json` prints there).
        let pod = in_the_pod(&spec, &d.deployment, info.node_cpus);
        assert_eq!(
            (pod.mode.as_str(), pod.workers, scaling_of(pod.scaling)),
            (mode, workers, scaling.as_str()),
            "{spec}: {:?}",
            pod.reasons
        );
        // Nothing the operator wrote is capped or ignored there.
        assert!(
            !pod.warnings
                .iter()
                .any(|w| w.contains("capped") || w.contains("ignored")),
            "{spec}: the pod's plan warns: {:?}",
            pod.warnings
        );
        let malformed = d
            .decision
            .reasons
            .iter()
            .chain(&pod.reasons)
            .find(|r| r.matches('=').count() > 1 && !r.starts_with("decision: "));
        assert_eq!(malformed, None, "{spec}: a reason with two '='");
    }
}

/// The launcher's plan inside a pod of `deployment`: the pod's resources
/// as the kubelet sets them, the container's environment as overrides
/// (the same `resolve` the launcher runs on its environment).
fn in_the_pod(spec: &serde_json::Value, deployment: &Deployment, node_cpus: u32) -> Plan {
    let quantity = |k: &str| spec["resources"][k].as_str().map(str::to_owned);
    let cpus = quantity("cpu").map(|c| Hint {
        value: corefit_operator::quantity::cpu_millis("cpu", &c).unwrap() as f64 / 1000.0,
        variable: "the pod's CPU limit".to_owned(),
    });
    let memory = quantity("memory").map(|m| Hint {
        value: corefit_operator::quantity::bytes("memory", &m).unwrap(),
        variable: "the pod's memory limit".to_owned(),
    });
    let env = env_of(deployment);
    let overrides = resolve(&FlagValues::default(), &env).expect("the pod's env resolves");
    plan_for_pod(
        &PodResources {
            node_cpus,
            cpus,
            memory,
        },
        &Platform::new(PlatformKind::Kubernetes, "KUBERNETES_SERVICE_HOST is set"),
        &overrides,
    )
}

fn scaling_of(s: corefit_plan::Scaling) -> &'static str {
    match s {
        corefit_plan::Scaling::Horizontal => "horizontal",
        corefit_plan::Scaling::Vertical => "vertical",
    }
}

#[test]
fn the_pod_gets_the_memory_budget_per_worker_exactly() {
    let info = ClusterInfo::default();
    // 1Gi at 300Mi: 3 workers by memory, where the launcher's default
    // 512Mi would allow 2; and sizes no launcher unit writes as given.
    for (per_worker, written) in [
        ("300Mi", "300Mi"),
        ("0.5Gi", "512Mi"),
        ("307201Ki", "307201Ki"),
        ("314572801", "314572801B"),
    ] {
        let spec = json!({"image": "i", "resources": {"cpu": "4", "memory": "1Gi"},
                          "scaling": {"strategy": "Vertical", "memoryPerWorker": per_worker}});
        let d = desired(&app(spec.clone()), &info).unwrap();
        assert_eq!(env(&d.deployment, "COREFIT_MEMORY_PER_WORKER"), written);
        let pod = in_the_pod(&spec, &d.deployment, info.node_cpus);
        assert_eq!(
            pod.workers, d.decision.workers,
            "{per_worker}: {:?}",
            pod.reasons
        );
        let want = if per_worker == "0.5Gi" { 2 } else { 3 };
        assert_eq!(pod.workers, want, "{per_worker}: {:?}", pod.reasons);
    }
    // No memoryPerWorker: not written, the launcher's default applies.
    let d = desired(&example("web-horizontal.yaml"), &info).unwrap();
    assert!(!env_of(&d.deployment).contains_key("COREFIT_MEMORY_PER_WORKER"));
}

#[test]
fn examples_have_the_expected_shape() {
    let info = ClusterInfo::default();
    let d = desired(&example("api-vertical.yaml"), &info).unwrap();
    let dep = &d.deployment;
    assert_eq!(dep.metadata.name.as_deref(), Some("api"));
    assert_eq!(dep.spec.replicas, Some(2));
    let or = &dep.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (or.kind.as_str(), or.name.as_str(), or.uid.as_str()),
        ("ClusterApp", "api", "u-1")
    );
    assert_eq!(or.controller, Some(true));
    let pod = dep.spec.template.spec.as_ref().unwrap();
    let c = &pod.containers[0];
    assert_eq!(
        c.command.as_ref().unwrap(),
        &["corefit", "--", "node", "dist/main.js"]
    );
    let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits["cpu"].0, "4");
    assert_eq!(limits["memory"].0, "2Gi");
    assert_eq!(
        c.resources.as_ref().unwrap().requests.as_ref(),
        Some(limits)
    );
    assert_eq!(env(dep, "COREFIT_ADMIN_PORT"), "9901");
    assert_eq!(env(dep, "PORT"), "8080");
    let probe = c
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(probe.path.as_deref(), Some("/ready"));
    let live = c
        .liveness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(live.path.as_deref(), Some("/health"));
    let svc = d.service.spec.as_ref().unwrap();
    assert_eq!(svc.ports.as_ref().unwrap()[0].port, 8080);
    assert_eq!(svc.selector.as_ref().unwrap()["corefit.dev/app"], "api");
    assert_eq!(d.selector, "corefit.dev/app=api");
    assert_eq!(
        dep.spec.selector.match_labels.as_ref(),
        svc.selector.as_ref(),
        "the Service selects exactly the Deployment's pods"
    );

    // Autoscaling without replicas starts at minReplicas.
    let jobs = desired(&example("worker-auto.yaml"), &info).unwrap();
    assert_eq!(jobs.deployment.spec.replicas, Some(2));
    let web = desired(&example("web-horizontal.yaml"), &info).unwrap();
    assert_eq!(env(&web.deployment, "NODE_ENV"), "production");
    // Deterministic: the same input gives the same output.
    assert_eq!(
        desired(&example("web-horizontal.yaml"), &info).unwrap(),
        web
    );
}

#[test]
fn invalid_specs_name_their_fields() {
    for (spec, field) in [
        (json!({}), "spec.image"),
        (
            json!({"image": "i", "resources": {"memory": "100Mi"}, "scaling": {"memoryPerWorker": "200Mi"}}),
            "spec.scaling.memoryPerWorker=200Mi",
        ),
        (
            json!({"image": "i", "resources": {"cpu": "lots"}}),
            "spec.resources.cpu",
        ),
        (
            json!({"image": "i", "scaling": {"workers": "many"}}),
            "spec.scaling.workers",
        ),
        (
            json!({"image": "i", "scaling": {"workers": 5000}}),
            "spec.scaling.workers",
        ),
        (json!({"image": "i", "env": [{"name": "1BAD"}]}), "spec.env"),
        // The launcher in the pod would read them over the operator's decision.
        (
            json!({"image": "i", "env": [{"name": "COREFIT_SCALING", "value": "vertical"}]}),
            "COREFIT_SCALING",
        ),
        (
            json!({"image": "i", "env": [{"name": "COREFIT_MEMORY_PER_WORKER", "value": "1Gi"}]}),
            "COREFIT_MEMORY_PER_WORKER",
        ),
    ] {
        let a = app(spec.clone());
        let e = check(&a.spec).unwrap_err();
        assert!(e.to_string().contains(field), "{spec}: {e}");
        assert!(desired(&a, &ClusterInfo::default()).is_err());
    }
}

#[test]
fn status_follows_the_deployment_and_keeps_transition_times() {
    let a = app(json!({"image": "i", "scaling": {"replicas": 2}}));
    let d = desired(&a, &ClusterInfo::default()).unwrap();
    let dep =
        |ready: i32| -> Deployment {
            let mut dep = d.deployment.clone();
            dep.metadata.generation = Some(1);
            dep.status = Some(serde_json::from_value(json!({
            "observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": ready
        })).unwrap());
            dep
        };
    fn applied<'a>(d: &'a corefit_operator::desired::Desired, dep: &'a Deployment) -> Outcome<'a> {
        Outcome::Applied {
            decision: &d.decision,
            selector: &d.selector,
            deployment: Some(dep),
            replicas_owner: d.replicas_owner,
        }
    }
    let cond = |s: &ClusterAppStatus, t: &str| {
        let c = s.conditions.iter().find(|c| c.type_ == t).unwrap();
        (c.status.clone(), c.last_transition_time.clone().unwrap())
    };
    let d1 = dep(1);
    let s1 = next_status(None, Some(3), applied(&d, &d1), "t1");
    assert_eq!(s1.ready_replicas, Some(1));
    assert_eq!(cond(&s1, "Ready"), ("False".into(), "t1".into()));
    assert_eq!(s1.observed_generation, Some(3));
    // The same world later: identical status, so no write.
    assert_eq!(next_status(Some(&s1), Some(3), applied(&d, &d1), "t2"), s1);
    let d2 = dep(2);
    let s2 = next_status(Some(&s1), Some(3), applied(&d, &d2), "t3");
    assert_eq!(cond(&s2, "Ready"), ("True".into(), "t3".into()));
    assert_eq!(cond(&s2, "Degraded"), ("False".into(), "t1".into()));
    // An invalid spec: Degraded, and the rest of the status is kept.
    let s3 = next_status(
        Some(&s2),
        Some(4),
        Outcome::Invalid {
            reason: "MissingImage",
            message: "spec.image is missing",
        },
        "t4",
    );
    assert_eq!(cond(&s3, "Degraded"), ("True".into(), "t4".into()));
    assert_eq!(cond(&s3, "Ready"), ("True".into(), "t3".into()));
    assert_eq!(s3.workers_per_pod, s2.workers_per_pod);
    assert_eq!(s3.observed_generation, Some(4));
}

#[test]
fn launcher_injection_wraps_the_command_and_shares_a_volume() {
    let cmd = json!(["python", "-m", "app"]);
    // Without injection: the image's own corefit, no init container.
    let plain = desired(
        &app(json!({"image": "py:3", "command": cmd})),
        &ClusterInfo::default(),
    )
    .unwrap();
    let pod = plain.deployment.spec.template.spec.unwrap();
    assert!(pod.init_containers.is_none() && pod.volumes.is_none());
    assert!(pod.containers[0].volume_mounts.is_none());
    assert_eq!(
        pod.containers[0].command.as_ref().unwrap(),
        &["corefit", "--", "python", "-m", "app"]
    );

    // With injection: the launcher image's /corefit copied into an
    // emptyDir that the app container mounts at the same path.
    let spec = json!({"image": "py:3", "command": cmd, "args": ["--port", "8080"],
                      "launcher": {"mode": "InitContainer", "image": "corefit:0.1"}});
    let d = desired(&app(spec), &ClusterInfo::default()).unwrap();
    let pod = d.deployment.spec.template.spec.unwrap();
    let (init, vol) = launcher_init(&pod, "corefit:0.1");
    for c in [init, &pod.containers[0]] {
        let m = &c.volume_mounts.as_ref().unwrap()[0];
        assert_eq!(
            (&m.name, m.mount_path.as_str()),
            (&vol.name, "/corefit-bin")
        );
    }
    let app_c = &pod.containers[0];
    assert_eq!(
        app_c.command.as_ref().unwrap(),
        &["/corefit-bin/corefit", "--", "python", "-m", "app"]
    );
    assert_eq!(app_c.args.as_ref().unwrap(), &["--port", "8080"]);
    // The copy works in the launcher image (busybox `cp`, /corefit 0755,
    // USER 65532) as non-root, read-only, with no capability; the app may
    // run the copy but not replace it.
    let sc = init.security_context.as_ref().expect("a security context");
    assert_eq!(
        (sc.run_as_user, sc.run_as_group, sc.run_as_non_root),
        (Some(65532), Some(65532), Some(true))
    );
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    let caps = sc.capabilities.as_ref().unwrap();
    assert_eq!(
        (caps.drop.as_deref(), caps.add.as_deref()),
        (Some(&["ALL".to_owned()][..]), None)
    );
    let app_mount = &app_c.volume_mounts.as_ref().unwrap()[0];
    assert_eq!(app_mount.read_only, Some(true));
    assert_ne!(
        init.volume_mounts.as_ref().unwrap()[0].read_only,
        Some(true)
    );
    // The init container's sizes are the app's: the pod asks for no more,
    // and its QoS class stays Guaranteed (requests = limits everywhere).
    let spec = json!({"image": "py:3", "command": cmd,
                      "resources": {"cpu": "500m", "memory": "256Mi"},
                      "launcher": {"mode": "InitContainer", "image": "corefit:0.1"}});
    let d = desired(&app(spec), &ClusterInfo::default()).unwrap();
    let pod = d.deployment.spec.template.spec.unwrap();
    let init_r = pod.init_containers.as_ref().unwrap()[0].resources.as_ref();
    assert_eq!(init_r, pod.containers[0].resources.as_ref());
    let r = init_r.expect("resources");
    assert_eq!(r.requests, r.limits);
    assert_eq!(r.limits.as_ref().unwrap()["cpu"].0, "500m");

    // No launcher.image: the operator's default stands in; with none
    // either, the spec is invalid.
    let spec = json!({"image": "py:3", "command": cmd, "launcher": {"mode": "InitContainer"}});
    assert!(desired(&app(spec.clone()), &ClusterInfo::default()).is_err());
    let info = ClusterInfo {
        launcher_image: Some("registry.example/corefit:0.2".to_owned()),
        ..ClusterInfo::default()
    };
    let d = desired(&app(spec), &info).unwrap();
    let pod = d.deployment.spec.template.spec.unwrap();
    assert_eq!(
        pod.init_containers.unwrap()[0].image.as_deref(),
        Some("registry.example/corefit:0.2")
    );
}

#[test]
fn autoscaling_and_budget_objects() {
    use corefit_operator::autoscale::ReplicasOwner;
    let info = ClusterInfo::default();
    let one = desired(&app(json!({"image": "i"})), &info).unwrap();
    assert!(one.hpa.is_none() && one.pdb.is_none());
    assert_eq!(one.replicas_owner, ReplicasOwner::ClusterApp);
    let three = desired(
        &app(json!({"image": "i", "scaling": {"replicas": 3}})),
        &info,
    )
    .unwrap();
    assert!(three.hpa.is_none());
    let pdb = three.pdb.unwrap();
    assert_eq!(pdb.metadata.owner_references.unwrap()[0].uid, "u-1");
    // worker-auto.yaml: autoscaling 2..6 at 70 %, so an HPA and a budget.
    let jobs = desired(&example("worker-auto.yaml"), &info).unwrap();
    assert_eq!(jobs.replicas_owner, ReplicasOwner::HorizontalPodAutoscaler);
    let hpa = jobs.hpa.unwrap();
    assert_eq!(hpa.spec.scale_target_ref.name, "jobs");
    assert_eq!(hpa.spec.scale_target_ref.kind, "Deployment");
    assert_eq!((hpa.spec.min_replicas, hpa.spec.max_replicas), (Some(2), 6));
    assert!(jobs.pdb.is_some());
    // Autoscaling from 1: no budget even when replicas says 3.
    let a = app(
        json!({"image": "i", "resources": {"cpu": "1"}, "scaling": {"replicas": 3,
        "autoscaling": {"minReplicas": 1, "maxReplicas": 4}}}),
    );
    let d = desired(&a, &info).unwrap();
    assert!(d.hpa.is_some() && d.pdb.is_none());
}

/// The app container's requests and limits, as `(requests, limits)` of
/// `resource -> quantity`.
type Sizes = std::collections::BTreeMap<String, String>;
fn resources_of(d: &Deployment) -> (Option<Sizes>, Option<Sizes>) {
    let r = d.spec.template.spec.as_ref().unwrap().containers[0]
        .resources
        .clone()
        .unwrap_or_default();
    let plain = |m: Option<
        std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >| { m.map(|m| m.into_iter().map(|(k, v)| (k, v.0)).collect::<Sizes>()) };
    (plain(r.requests), plain(r.limits))
}

fn sizes(pairs: &[(&str, &str)]) -> Option<Sizes> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// Requests apart from limits: the Deployment carries each as stated (no
/// CPU limit when none is given; a limit alone is also the request), the
/// workers come from the CPU request and the reasons say so, and the app
/// container is handed its request by the downward API.
#[test]
fn requests_apart_from_limits() {
    let info = ClusterInfo {
        node_cpus: 16,
        ..ClusterInfo::default()
    };
    // (resources, requests, limits, workers, a reason that must appear)
    let cases = [
        (
            json!({"requests": {"cpu": "2", "memory": "1Gi"}}),
            sizes(&[("cpu", "2"), ("memory", "1Gi")]),
            None,
            2,
            "no CPU limit: workers are sized from the CPU request (spec.resources.requests.cpu=2)",
        ),
        (
            json!({"requests": {"cpu": "500m"}}),
            sizes(&[("cpu", "500m")]),
            None,
            1,
            "0.5 CPUs from spec.resources.requests.cpu=0.5",
        ),
        (
            json!({"requests": {"cpu": "2"}, "limits": {"cpu": "4", "memory": "2Gi"}}),
            sizes(&[("cpu", "2"), ("memory", "2Gi")]),
            sizes(&[("cpu", "4"), ("memory", "2Gi")]),
            2,
            "not the limit (spec.resources.limits.cpu=4)",
        ),
        (
            json!({"limits": {"cpu": "3"}, "requests": {"memory": "3Gi"}}),
            sizes(&[("cpu", "3"), ("memory", "3Gi")]),
            sizes(&[("cpu", "3")]),
            3,
            "3 CPUs from spec.resources.limits.cpu=3",
        ),
        // The shorthand keeps meaning request = limit.
        (
            json!({"cpu": "1500m", "memory": "1Gi"}),
            sizes(&[("cpu", "1500m"), ("memory", "1Gi")]),
            sizes(&[("cpu", "1500m"), ("memory", "1Gi")]),
            1,
            "1.5 CPUs from spec.resources.cpu=1.5",
        ),
    ];
    for (resources, requests, limits, workers, reason) in cases {
        let spec = json!({"image": "i", "resources": resources});
        let d = desired(&app(spec.clone()), &info).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(resources_of(&d.deployment), (requests, limits), "{spec}");
        assert_eq!(
            d.decision.workers, workers,
            "{spec}: {:?}",
            d.decision.reasons
        );
        assert!(
            d.decision.reasons.iter().any(|r| r.contains(reason)),
            "{spec}: no {reason:?} in {:#?}",
            d.decision.reasons
        );
        let container = &d.deployment.spec.template.spec.as_ref().unwrap().containers[0];
        let wired = container
            .env
            .iter()
            .flatten()
            .find(|e| e.name == "COREFIT_CPU_REQUEST")
            .unwrap_or_else(|| panic!("{spec}: COREFIT_CPU_REQUEST not wired"));
        assert_eq!(wired.value, None);
        let field = wired
            .value_from
            .as_ref()
            .and_then(|v| v.resource_field_ref.as_ref())
            .expect("a resourceFieldRef");
        assert_eq!(
            (
                field.container_name.as_deref(),
                field.resource.as_str(),
                field.divisor.as_ref().map(|q| q.0.as_str())
            ),
            (Some("app"), "requests.cpu", Some("1m")),
            "{spec}"
        );
        // The launcher in the pod, with no quota (no CPU limit) and the
        // request handed over, decides the same without capping.
        if resources.get("limits").and_then(|l| l.get("cpu")).is_none()
            && resources.get("cpu").is_none()
        {
            let pod = in_a_pod_without_quota(&d.deployment, &resources, info.node_cpus);
            assert_eq!(pod.workers, workers, "{spec}: {:?}", pod.reasons);
            assert!(
                pod.effective_cpus
                    .source
                    .starts_with("the CPU request (COREFIT_CPU_REQUEST="),
                "{spec}: {:?}",
                pod.effective_cpus
            );
            assert!(
                pod.warnings.iter().all(|w| !w.contains("capped")),
                "{:?}",
                pod.warnings
            );
        }
    }
    // No CPU stated: nothing wired.
    let d = desired(
        &app(json!({"image": "i", "resources": {"requests": {"memory": "1Gi"}}})),
        &info,
    )
    .unwrap();
    assert!(!env_of(&d.deployment).contains_key("COREFIT_CPU_REQUEST"));
    assert_eq!(
        resources_of(&d.deployment),
        (sizes(&[("memory", "1Gi")]), None)
    );
}

/// The launcher's plan in a pod with no CPU quota on a node of
/// `node_cpus`: the kubelet hands it the request (what the downward API
/// puts in COREFIT_CPU_REQUEST), the environment is its overrides.
fn in_a_pod_without_quota(d: &Deployment, resources: &serde_json::Value, node_cpus: u32) -> Plan {
    use corefit_plan::facts::{
        CgroupLayout, CpuFacts, CpuRequest, Limits, MemoryFacts, RequestSource,
    };
    let millis = corefit_operator::quantity::cpu_millis(
        "cpu",
        resources["requests"]["cpu"].as_str().unwrap(),
    )
    .unwrap();
    let mut platform = Platform::new(PlatformKind::Kubernetes, "KUBERNETES_SERVICE_HOST is set");
    platform.cpu_request = Some(CpuRequest {
        millis,
        source: RequestSource::Variable {
            name: "COREFIT_CPU_REQUEST".to_owned(),
            value: millis.to_string(),
        },
    });
    let limits = Limits {
        cgroup: CgroupLayout::V2,
        cpu: CpuFacts {
            host_cpus: node_cpus,
            affinity_cpus: None,
            quota: None,
            cpuset: None,
        },
        memory: MemoryFacts {
            host_bytes: Some(64 << 30),
            limit: None,
            high: None,
        },
    };
    let overrides = resolve(&FlagValues::default(), &env_of(d)).expect("the pod's env resolves");
    corefit_plan::plan(&limits, &platform, &overrides)
}

/// Requests and limits that Kubernetes (or the operator) refuses name the
/// fields at fault.
#[test]
fn bad_requests_and_limits_name_their_fields() {
    for (resources, scaling, reason, said) in [
        (
            json!({"requests": {"cpu": "4"}, "limits": {"cpu": "2"}}),
            json!({}),
            "RequestAboveLimit",
            "spec.resources.requests.cpu=4 is above spec.resources.limits.cpu=2",
        ),
        (
            json!({"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}),
            json!({}),
            "RequestAboveLimit",
            "spec.resources.requests.memory=2Gi is above spec.resources.limits.memory=1Gi",
        ),
        (
            json!({"cpu": "2", "requests": {"cpu": "1"}}),
            json!({}),
            "ResourcesConflict",
            "spec.resources.cpu is both request and limit; it cannot be given with spec.resources.requests.cpu",
        ),
        (
            json!({"memory": "1Gi", "limits": {"memory": "1Gi"}}),
            json!({}),
            "ResourcesConflict",
            "spec.resources.limits.memory",
        ),
        (
            json!({"requests": {"cpu": "lots"}}),
            json!({}),
            "BadQuantity",
            "spec.resources.requests.cpu",
        ),
        (
            json!({"limits": {"cpu": "0"}}),
            json!({}),
            "BadQuantity",
            "spec.resources.limits.cpu",
        ),
        (
            json!({"requests": {"memory": "100Mi"}}),
            json!({"memoryPerWorker": "200Mi"}),
            "MemoryPerWorkerAboveMemory",
            "(spec.resources.requests.memory=100Mi)",
        ),
        (
            json!({"requests": {"memory": "1Gi"}}),
            json!({"strategy": "Vertical"}),
            "VerticalWithoutCpu",
            "spec.resources.requests.cpu",
        ),
    ] {
        let spec = json!({"image": "i", "resources": resources, "scaling": scaling});
        let a = app(spec.clone());
        let e = check(&a.spec).unwrap_err();
        assert_eq!(e.reason(), reason, "{spec}: {e}");
        assert!(e.to_string().contains(said), "{spec}: {e}");
        assert!(desired(&a, &ClusterInfo::default()).is_err());
    }
    // The operator's own variable may not be set by hand.
    let e = check(
        &app(json!({"image": "i", "env": [{"name": "COREFIT_CPU_REQUEST", "value": "4000"}]})).spec,
    )
    .unwrap_err();
    assert_eq!(e.reason(), "ReservedEnv");
    // Vertical with only a request or only a limit is fine.
    for resources in [
        json!({"requests": {"cpu": "2"}}),
        json!({"limits": {"cpu": "2"}}),
    ] {
        let spec =
            json!({"image": "i", "resources": resources, "scaling": {"strategy": "Vertical"}});
        assert!(check(&app(spec.clone()).spec).is_ok(), "{spec}");
    }
}

/// A leaving pod keeps serving a few seconds (preStop `sleep`) before the
/// kubelet's SIGTERM, so whoever still routes to it while its endpoint is
/// removed is not refused; the pod's grace period covers the delay and
/// the launcher's own 25 s grace. In both launcher modes.
#[test]
fn leaving_pods_keep_serving_before_sigterm() {
    use corefit_operator::desired::{STOP_DELAY_SECS, TERMINATION_GRACE_SECS};
    for launcher in [
        json!({}),
        json!({"mode": "InitContainer", "image": "corefit/corefit:0.1.0"}),
    ] {
        let a = app(json!({"image": "i", "command": ["node", "s.js"], "launcher": launcher}));
        let d = desired(&a, &ClusterInfo::default()).unwrap().deployment;
        let pod = d.spec.template.spec.unwrap();
        let pre_stop = pod.containers[0]
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref())
            .and_then(|h| h.exec.as_ref())
            .and_then(|e| e.command.clone());
        assert_eq!(
            pre_stop,
            Some(vec!["sleep".to_owned(), STOP_DELAY_SECS.to_string()]),
            "{launcher}"
        );
        let grace = pod.termination_grace_period_seconds;
        assert_eq!(grace, Some(TERMINATION_GRACE_SECS));
        assert!(
            grace.is_some_and(|g| g > STOP_DELAY_SECS + 25),
            "{grace:?}: the delay and the launcher's grace"
        );
        // The init container is not stopped: it has no hook.
        for c in pod.init_containers.iter().flatten() {
            assert!(c.lifecycle.is_none(), "{}", c.name);
        }
    }
}
