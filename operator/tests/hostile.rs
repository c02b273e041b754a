//! Hostile ClusterApps against the real kube-apiserver 1.20.2 and the real
//! `corefit-operator` binary: huge and negative numbers, absurd
//! quantities, about a megabyte of environment, names at and past the
//! length limits, unicode and control characters. Each case must be
//! refused by the API server (422 naming the field, or its size limits)
//! or surfaced by the operator as `Degraded=True` with an `InvalidSpec`
//! event naming the field, or converge like any app; none may crash the
//! operator or wedge its queue: an ordinary app created after the batch
//! converges promptly, the one operator process never restarted, and
//! the broken apps are retried with backoff and no writes.
//!
//! The second test gives apps secret-looking environment (including
//! through invalid specs and a refused write) to an operator logging at
//! debug level in JSON, and checks that no value reaches its log, any
//! event or any status.
//!
//! Figures go to test-support/src/record.rs (`COREFIT_RELIABILITY_OUT`).
//! Needs COREFIT_TEST_KUBECONFIG; without it every test fails (no skip).

use std::time::{Duration, Instant};

use corefit_operator::types::ClusterApp;
use corefit_test_support::k8s::*;
use corefit_test_support::record::record;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject};
use kube::{Api, Client, ResourceExt};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);
/// How soon an ordinary app must converge after the hostile batch.
const PROMPT: Duration = Duration::from_secs(15);

/// What must happen to a case.
#[derive(Debug, Clone)]
enum Want {
    /// The API server refuses it with 422, naming this field.
    Schema(&'static str),
    /// The API server refuses it for its size: this status code, this text.
    TooLarge(u16, &'static str),
    /// Accepted; `Degraded=True` with this reason and a message (and an
    /// `InvalidSpec` event) containing this text; no Deployment.
    Condition(&'static str, &'static str),
    /// Accepted and reconciled: Deployment, Service, `Degraded=False`.
    Converges,
}

struct Case {
    /// The object's name, or its generateName prefix.
    label: String,
    body: Value,
    want: Want,
}

fn case(name: &str, spec: Value, want: Want) -> Case {
    Case {
        label: name.to_owned(),
        body: json!({
            "apiVersion": "corefit.dev/v1alpha1",
            "kind": "ClusterApp",
            "metadata": {"name": name},
            "spec": spec,
        }),
        want,
    }
}

fn with_metadata(label: &str, metadata: Value, spec: Value, want: Want) -> Case {
    Case {
        label: label.to_owned(),
        body: json!({
            "apiVersion": "corefit.dev/v1alpha1",
            "kind": "ClusterApp",
            "metadata": metadata,
            "spec": spec,
        }),
        want,
    }
}

fn env_of_size(count: usize, value_bytes: usize) -> Value {
    (0..count)
        .map(|i| json!({"name": format!("V{i:05}"), "value": "x".repeat(value_bytes)}))
        .collect()
}

/// At most the first 300 characters (API errors may echo a megabyte).
fn short(s: &str) -> String {
    match s.char_indices().nth(300) {
        Some((cut, _)) => format!("{}… ({} bytes)", &s[..cut], s.len()),
        None => s.to_owned(),
    }
}

fn dynamic_api(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<ClusterApp>(&()))
}

/// Tallies of one group of cases.
#[derive(Default)]
struct Tally {
    tried: usize,
    schema: usize,
    too_large: usize,
    condition: usize,
    converged: usize,
    /// Names of the accepted apps, and what they must come to.
    accepted: Vec<(String, Want)>,
}

/// Sends each case to the API server and checks the refusals; returns
/// the accepted ones for [`settle`].
async fn submit(api: &Api<DynamicObject>, cases: Vec<Case>) -> Tally {
    let mut tally = Tally::default();
    for c in cases {
        tally.tried += 1;
        let obj: DynamicObject = serde_json::from_value(c.body).expect("case body");
        let result = api.create(&PostParams::default(), &obj).await;
        match (&c.want, result) {
            (Want::Schema(field), Err(kube::Error::Api(s))) => {
                assert_eq!(s.code, 422, "{}: {}", c.label, short(&s.message));
                assert!(
                    s.message.contains(field),
                    "{}: the refusal should name {field}: {}",
                    c.label,
                    short(&s.message)
                );
                tally.schema += 1;
            }
            (Want::TooLarge(code, text), Err(kube::Error::Api(s))) => {
                assert_eq!(s.code, *code, "{}: {}", c.label, short(&s.message));
                assert!(
                    s.message.contains(text),
                    "{}: {}",
                    c.label,
                    short(&s.message)
                );
                tally.too_large += 1;
            }
            (Want::Condition(..) | Want::Converges, Ok(created)) => {
                tally.accepted.push((created.name_any(), c.want.clone()));
            }
            (want, Ok(_)) => panic!("{}: accepted, but should be refused ({want:?})", c.label),
            (want, Err(e)) => panic!(
                "{}: refused, but should be {want:?}: {}",
                c.label,
                short(&e.to_string())
            ),
        }
    }
    tally
}

/// Waits until every accepted app of `tally` shows what it must.
async fn settle(client: &Client, ns: &str, tally: &mut Tally) {
    let apps: Api<ClusterApp> = Api::namespaced(client.clone(), ns);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let svcs: Api<Service> = Api::namespaced(client.clone(), ns);
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    for (name, want) in tally.accepted.clone() {
        match want {
            Want::Condition(reason, text) => {
                let (_, r, msg) = wait_for(&format!("{name} Degraded"), T, || async {
                    let a = apps.get(&name).await.ok()?;
                    condition(&a, "Degraded").filter(|c| c.0 == "True")
                })
                .await;
                assert_eq!(r, reason, "{name}: {}", short(&msg));
                assert!(
                    msg.contains(text),
                    "{name}: {} should name {text:?}",
                    short(&msg)
                );
                assert!(msg.len() < 600, "{name}: a {} byte message", msg.len());
                wait_until(&format!("{name} InvalidSpec event"), T, || async {
                    EventMatch::reason("InvalidSpec")
                        .about(&name)
                        .warning()
                        .note(text)
                        .seen(&events)
                        .await
                })
                .await;
                assert!(
                    deps.get_opt(&name).await.unwrap().is_none(),
                    "{name}: an invalid app got a Deployment"
                );
                tally.condition += 1;
            }
            Want::Converges => {
                wait_until(&format!("{name} converges"), T, || async {
                    let ok = has_condition(&apps, &name, "Degraded", "False").await;
                    ok && matches!(deps.get_opt(&name).await, Ok(Some(_)))
                        && matches!(svcs.get_opt(&name).await, Ok(Some(_)))
                })
                .await;
                tally.converged += 1;
            }
            other => unreachable!("{other:?} is never accepted"),
        }
    }
}

fn alive_and_same(op: &mut Operator, pid: u32) -> usize {
    assert!(
        op.alive(),
        "the operator died: {:?}\n{}",
        op.exited(),
        short_tail(&op.log_text())
    );
    assert_eq!(op.pid(), pid);
    0
}

fn short_tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..]
        .iter()
        .map(|l| short(l))
        .collect::<Vec<_>>()
        .join("\n")
}

fn figures(t: &Tally, restarts: usize) -> Vec<(&'static str, String)> {
    vec![
        ("tried", t.tried.to_string()),
        ("rejected by schema", t.schema.to_string()),
        ("refused for size", t.too_large.to_string()),
        ("surfaced as condition", t.condition.to_string()),
        ("converged", t.converged.to_string()),
        ("operator restarts", restarts.to_string()),
    ]
}

/// Runs one group: submit, settle, check the operator, record.
async fn group(
    client: &Client,
    ns: &str,
    op: &mut Operator,
    pid: u32,
    scenario: &str,
    fault: &str,
    cases: Vec<Case>,
) -> Tally {
    let start = Instant::now();
    let api = dynamic_api(client, ns);
    let mut tally = submit(&api, cases).await;
    settle(client, ns, &mut tally).await;
    let restarts = alive_and_same(op, pid);
    assert_eq!(
        tally.schema + tally.too_large + tally.condition + tally.converged,
        tally.tried
    );
    record(
        "hostile specs",
        scenario,
        fault,
        start.elapsed(),
        &figures(&tally, restarts),
        "each refused (422 naming the field, or a size limit) or Degraded with an event; operator up",
    );
    tally
}

fn numbers() -> Vec<Case> {
    let two63 = 9_223_372_036_854_775_808_u64;
    vec![
        case(
            "rep-2p31",
            json!({"image": "a", "scaling": {"replicas": 2147483647}}),
            Want::Schema("spec.scaling.replicas"),
        ),
        case(
            "rep-2p63",
            json!({"image": "a", "scaling": {"replicas": two63}}),
            Want::Schema("spec.scaling.replicas"),
        ),
        case(
            "rep-1e308",
            json!({"image": "a", "scaling": {"replicas": 1e308}}),
            Want::Schema("spec.scaling.replicas"),
        ),
        case(
            "rep-neg",
            json!({"image": "a", "scaling": {"replicas": -1}}),
            Want::Schema("spec.scaling.replicas"),
        ),
        case(
            "rep-frac",
            json!({"image": "a", "scaling": {"replicas": 1.5}}),
            Want::Schema("spec.scaling.replicas"),
        ),
        case(
            "wrk-2p31",
            json!({"image": "a", "scaling": {"workers": 2147483647}}),
            Want::Schema("spec.scaling.workers"),
        ),
        case(
            "wrk-neg",
            json!({"image": "a", "scaling": {"workers": -5}}),
            Want::Schema("spec.scaling.workers"),
        ),
        case(
            "wrk-2p63",
            json!({"image": "a", "scaling": {"workers": two63}}),
            Want::Schema("spec.scaling.workers"),
        ),
        case(
            "wrk-1e308",
            json!({"image": "a", "scaling": {"workers": 1e308}}),
            Want::Schema("spec.scaling.workers"),
        ),
        case(
            "wrk-20-digits",
            json!({"image": "a", "scaling": {"workers": "99999999999999999999"}}),
            Want::Condition(
                "BadWorkers",
                "spec.scaling.workers=\"99999999999999999999\"",
            ),
        ),
        case(
            "port-1e308",
            json!({"image": "a", "port": 1e308}),
            Want::Schema("spec.port"),
        ),
        case(
            "port-neg",
            json!({"image": "a", "port": -80}),
            Want::Schema("spec.port"),
        ),
        case(
            "admin-2p31",
            json!({"image": "a", "launcher": {"adminPort": 2147483648_u64}}),
            Want::Schema("spec.launcher.adminPort"),
        ),
        case(
            "min-2p31",
            json!({"image": "a", "scaling": {"autoscaling": {"minReplicas": 2147483647, "maxReplicas": 2}}}),
            Want::Schema("spec.scaling.autoscaling.minReplicas"),
        ),
        case(
            "max-neg",
            json!({"image": "a", "scaling": {"autoscaling": {"minReplicas": 1, "maxReplicas": -1}}}),
            Want::Schema("spec.scaling.autoscaling.maxReplicas"),
        ),
        case(
            "target-1e308",
            json!({"image": "a", "scaling": {"autoscaling": {"minReplicas": 1, "maxReplicas": 2, "targetCPUUtilizationPercentage": 1e308}}}),
            Want::Schema("targetCPUUtilizationPercentage"),
        ),
    ]
}

fn quantities() -> Vec<Case> {
    let cpu = |name: &str, q: &str, want| {
        case(name, json!({"image": "a", "resources": {"cpu": q}}), want)
    };
    let mem = |name: &str, q: &str, want| {
        case(
            name,
            json!({"image": "a", "resources": {"memory": q}}),
            want,
        )
    };
    vec![
        cpu("cpu-1e30", "1e30", Want::Schema("spec.resources.cpu")),
        cpu("cpu-neg", "-1", Want::Schema("spec.resources.cpu")),
        cpu("cpu-1-5-5", "1.5.5", Want::Schema("spec.resources.cpu")),
        cpu(
            "cpu-arabic-3",
            "\u{663}",
            Want::Schema("spec.resources.cpu"),
        ),
        cpu("cpu-empty", "", Want::Schema("spec.resources.cpu")),
        mem("mem-nan", "NaN", Want::Schema("spec.resources.memory")),
        mem(
            "mem-fullwidth-2",
            "\u{ff12}Gi",
            Want::Schema("spec.resources.memory"),
        ),
        mem(
            "mem-999999999ei",
            "999999999Ei",
            Want::Condition(
                "BadQuantity",
                "spec.resources.memory=\"999999999Ei\" is too large",
            ),
        ),
        cpu(
            "cpu-41-digits",
            &"9".repeat(41),
            Want::Condition("BadQuantity", "spec.resources.cpu=\"9999"),
        ),
        // A megabyte of digits: the message quotes 64 of them.
        cpu(
            "cpu-1mb-digits",
            &"9".repeat(1 << 20),
            Want::Condition("BadQuantity", "(1048576 bytes) is too large"),
        ),
        case(
            "mpw-infinity",
            json!({"image": "a", "scaling": {"memoryPerWorker": "Infinity"}}),
            Want::Schema("spec.scaling.memoryPerWorker"),
        ),
    ]
}

fn big_env() -> Vec<Case> {
    vec![
        // One value of 1 MiB: longer than one environment string can be.
        case(
            "env-1-mib-value",
            json!({"image": "a", "env": [{"name": "BLOB", "value": "x".repeat(1 << 20)}]}),
            Want::Schema("spec.env.value"),
        ),
        // 2000 variables, about 1 MB.
        case(
            "env-2000-vars",
            json!({"image": "a", "env": env_of_size(2000, 500)}),
            Want::Schema("spec.env"),
        ),
        // 1000 variables of 1000 bytes: within the schema, 1 MB in all.
        case(
            "env-1000x1000",
            json!({"image": "a", "env": env_of_size(1000, 1000)}),
            Want::Condition("CommandAndEnvTooLarge", "add up to 1008000 bytes"),
        ),
        // 50,000 three-byte characters: under the schema's 131072
        // characters, over Linux's 131072 bytes for one NAME=value.
        case(
            "env-euros",
            json!({"image": "a", "env": [{"name": "GREETING", "value": "€".repeat(50_000)}]}),
            Want::Condition(
                "StringTooLong",
                "spec.env[0] (GREETING) as NAME=value is 150010 bytes",
            ),
        ),
        case(
            "args-600k",
            json!({"image": "a", "command": ["node"], "args": (0..600).map(|_| "y".repeat(1000)).collect::<Vec<_>>()}),
            Want::Condition(
                "CommandAndEnvTooLarge",
                "spec.command, spec.args and spec.env",
            ),
        ),
        // 3.5 MB: past the API server's request limit.
        case(
            "env-3-5-mb",
            json!({"image": "a", "env": env_of_size(1000, 3500)}),
            Want::TooLarge(413, "Request entity too large"),
        ),
        // 1.7 MB: past etcd's object limit.
        case(
            "env-1-7-mb",
            json!({"image": "a", "env": env_of_size(1000, 1700)}),
            Want::TooLarge(500, "request is too large"),
        ),
        // Strings every pod would carry, past any real image or path.
        case(
            "image-1-4-mb",
            json!({"image": "a".repeat(1_400_000)}),
            Want::Schema("spec.image"),
        ),
        case(
            "path-1-4-mb",
            json!({"image": "a", "healthCheckPath": format!("/{}", "p".repeat(1_400_000))}),
            Want::Schema("spec.healthCheckPath"),
        ),
        // 400 KB: big, and within every limit.
        case(
            "env-400k",
            json!({"image": "a", "env": env_of_size(400, 1000)}),
            Want::Converges,
        ),
    ]
}

fn names() -> Vec<Case> {
    let long_env = "E".repeat(253);
    let too_long_env = "E".repeat(254);
    vec![
        case(
            &"a".repeat(253),
            json!({"image": "a"}),
            Want::Schema("metadata.name"),
        ),
        case(
            &"a".repeat(64),
            json!({"image": "a"}),
            Want::Schema("metadata.name"),
        ),
        case(
            &format!("n{}", "6".repeat(62)),
            json!({"image": "a"}),
            Want::Converges,
        ),
        case(
            "dotted.name",
            json!({"image": "a"}),
            Want::Schema("metadata.name"),
        ),
        case(
            "9lives",
            json!({"image": "a"}),
            Want::Schema("metadata.name"),
        ),
        // A 70-character prefix: the API server cuts it to 58 and adds 5.
        with_metadata(
            "generate-name-70",
            json!({"generateName": format!("g{}", "e".repeat(69))}),
            json!({"image": "a"}),
            Want::Converges,
        ),
        case(
            "env-name-253",
            json!({"image": "a", "env": [{"name": long_env, "value": "1"}]}),
            Want::Converges,
        ),
        case(
            "env-name-254",
            json!({"image": "a", "env": [{"name": too_long_env, "value": "1"}]}),
            Want::Schema("spec.env.name"),
        ),
        with_metadata(
            "label-64",
            json!({"name": "label-64", "labels": {"team": "t".repeat(64)}}),
            json!({"image": "a"}),
            Want::Schema("metadata.labels"),
        ),
    ]
}

/// The unicode value the Deployment must carry byte for byte.
const UNICODE_VALUE: &str = "héllo wörld 🎉 日本語 \u{202e}txt.exe";

fn unicode() -> Vec<Case> {
    vec![
        case("café", json!({"image": "a"}), Want::Schema("metadata.name")),
        case("Web", json!({"image": "a"}), Want::Schema("metadata.name")),
        case(
            "env-name-cafe",
            json!({"image": "a", "env": [{"name": "CAFÉ", "value": "1"}]}),
            Want::Schema("spec.env.name"),
        ),
        with_metadata(
            "label-unicode",
            json!({"name": "label-unicode", "labels": {"app": "café"}}),
            json!({"image": "a"}),
            Want::Schema("metadata.labels"),
        ),
        case(
            "workers-arabic-3",
            json!({"image": "a", "scaling": {"workers": "\u{663}"}}),
            Want::Schema("spec.scaling.workers"),
        ),
        case(
            "image-unicode",
            json!({"image": "ünïcødé:1"}),
            Want::Condition("BadImage", "spec.image=\"ünïcødé:1\""),
        ),
        case(
            "image-newline",
            json!({"image": "web\n:1"}),
            Want::Condition("BadImage", "spec.image=\"web\\n:1\""),
        ),
        case(
            "env-nul",
            json!({"image": "a", "env": [{"name": "GREETING", "value": "a\u{0}b"}]}),
            Want::Condition("NulCharacter", "the value of spec.env[0] (GREETING)"),
        ),
        case(
            "args-nul",
            json!({"image": "a", "command": ["node", "a\u{0}b"]}),
            Want::Condition("NulCharacter", "spec.command[1]"),
        ),
        case(
            "env-unicode-value",
            json!({"image": "a", "command": ["nöde", "sérver.js"], "args": ["--naïve", "🎉"],
                   "healthCheckPath": "/héalth", "env": [{"name": "GREETING", "value": UNICODE_VALUE}]}),
            Want::Converges,
        ),
        with_metadata(
            "annotation-unicode",
            json!({"name": "annotation-unicode", "annotations": {"note": "🎉 ünïcødé \u{202e}"}}),
            json!({"image": "a"}),
            Want::Converges,
        ),
    ]
}

/// Writes through the scale and status subresources of a valid app.
async fn subresources(client: &Client, ns: &str) -> Tally {
    let api = dynamic_api(client, ns);
    let apps: Api<ClusterApp> = Api::namespaced(client.clone(), ns);
    let target: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "corefit.dev/v1alpha1", "kind": "ClusterApp",
        "metadata": {"name": "target"}, "spec": {"image": "a"},
    }))
    .unwrap();
    api.create(&PostParams::default(), &target).await.unwrap();
    let mut tally = Tally::default();
    let scale_cases: [(Value, u16, &str); 4] = [
        (json!(2147483647), 422, "spec.scaling.replicas"),
        (json!(-5), 422, "replicas"),
        (json!(9_223_372_036_854_775_808_u64), 422, "Invalid value"),
        (json!(1e308), 422, "Invalid value"),
    ];
    for (n, code, field) in scale_cases {
        tally.tried += 1;
        let r = apps
            .patch_scale(
                "target",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": n}})),
            )
            .await;
        match r {
            Err(kube::Error::Api(s)) => {
                assert_eq!(s.code, code, "scale to {n}: {}", short(&s.message));
                assert!(
                    s.message.contains(field),
                    "scale to {n}: {}",
                    short(&s.message)
                );
                tally.schema += 1;
            }
            other => panic!("scale to {n} should be refused: {other:?}"),
        }
    }
    // Counts the operator reads back: one value out of range once made
    // the whole list of apps fail to decode and stalled the operator.
    let status_cases: [(Value, &str); 4] = [
        (
            json!({"workersPerPod": 3_000_000_000_u64}),
            "status.workersPerPod",
        ),
        (
            json!({"readyReplicas": -9_999_999_999_i64}),
            "status.readyReplicas",
        ),
        (json!({"replicas": 3_000_000_000_u64}), "status.replicas"),
        (json!({"workersPerPod": 1e308}), "status.workersPerPod"),
    ];
    for (status, field) in status_cases {
        tally.tried += 1;
        let r = apps
            .patch_status(
                "target",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await;
        match r {
            Err(kube::Error::Api(s)) => {
                assert_eq!(s.code, 422, "{status}: {}", short(&s.message));
                assert!(s.message.contains(field), "{status}: {}", short(&s.message));
                tally.schema += 1;
            }
            other => panic!("status {status} should be refused: {other:?}"),
        }
    }
    // The app written to is unharmed.
    let mut target = Tally {
        accepted: vec![("target".to_owned(), Want::Converges)],
        ..Tally::default()
    };
    settle(client, ns, &mut target).await;
    tally
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_specs_are_refused_or_surfaced_and_never_wedge_the_operator() {
    let (client, ns) = setup("hostile").await;
    let mut op = Operator::start(&ns).await;
    let pid = op.pid();
    let started = Instant::now();

    let mut all = Vec::new();
    all.push(
        group(
            &client,
            &ns,
            &mut op,
            pid,
            "huge and negative numbers",
            "replicas, workers, ports, autoscaling bounds at 2^31-1, 2^63, 1e308, -1, 1.5",
            numbers(),
        )
        .await,
    );
    all.push(
        group(&client, &ns, &mut op, pid, "absurd quantities",
            "cpu/memory 1e30, 999999999Ei, -1, NaN, 1.5.5, Arabic and fullwidth digits, 41 digits, 1 MB of digits", quantities())
        .await,
    );
    all.push(
        group(&client, &ns, &mut op, pid, "about 1 MB of env",
            "one 1 MiB value, 2000 vars, 1000x1000 B, 150 KB of €, 600 KB of args, 3.5 MB and 1.7 MB objects, 1.4 MB image and probe path, 400 KB", big_env())
        .await,
    );
    all.push(
        group(&client, &ns, &mut op, pid, "names at the length limit",
            "names of 253, 64, 63 chars, dotted, digit-first, 70-char generateName, env names of 253/254, 64-char label", names())
        .await,
    );
    all.push(
        group(&client, &ns, &mut op, pid, "unicode and control characters",
            "unicode names, env names, labels, digits, images; newline and NUL; unicode values, args, path, annotations", unicode())
        .await,
    );
    {
        let start = Instant::now();
        let t = subresources(&client, &ns).await;
        let restarts = alive_and_same(&mut op, pid);
        record(
            "hostile specs",
            "scale and status subresources",
            "kubectl scale to 2^31-1, -5, 2^63, 1e308; status counts 3e9, -1e10, 1e308",
            start.elapsed(),
            &figures(&t, restarts),
            "each refused by the API server; operator up",
        );
        all.push(t);
    }

    // The unicode value reached the Deployment byte for byte.
    let deps: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let d = deps.get("env-unicode-value").await.unwrap();
    let c = &d.spec.template.spec.as_ref().unwrap().containers[0];
    let greeting = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "GREETING")
        .unwrap();
    assert_eq!(greeting.value.as_deref(), Some(UNICODE_VALUE));
    assert_eq!(c.args.as_deref().unwrap(), ["--naïve", "🎉"]);

    // Not wedged: an ordinary app created now converges promptly.
    let apps: Api<ClusterApp> = Api::namespaced(client.clone(), &ns);
    let svcs: Api<Service> = Api::namespaced(client.clone(), &ns);
    // What the broken apps look like now: their retries must not change it.
    let broken_names: Vec<String> = all
        .iter()
        .flat_map(|t| &t.accepted)
        .filter(|(_, w)| matches!(w, Want::Condition(..)))
        .map(|(n, _)| n.clone())
        .collect();
    let versions = || async {
        let mut v = Vec::new();
        for n in &broken_names {
            v.push(apps.get(n).await.unwrap().resource_version());
        }
        v
    };
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let invalid_events = || async {
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter(|e| e.reason.as_deref() == Some("InvalidSpec"))
            .count()
    };
    let (v0, e0) = (versions().await, invalid_events().await);
    let m0 = op.metrics().await;
    let last_start = Instant::now();
    apps.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "corefit.dev/v1alpha1", "kind": "ClusterApp",
            "metadata": {"name": "last"},
            "spec": {"image": "web:1", "resources": {"cpu": "2", "memory": "1Gi"}},
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    wait_until("the app created last converges", PROMPT, || async {
        let ok = has_condition(&apps, "last", "Degraded", "False").await;
        ok && matches!(deps.get_opt("last").await, Ok(Some(_)))
            && matches!(svcs.get_opt("last").await, Ok(Some(_)))
    })
    .await;
    let last_converged = last_start.elapsed();

    // The broken apps are retried with backoff, writing nothing.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let m1 = op.metrics().await;
    let broken: usize = all.iter().map(|t| t.condition).sum();
    assert_eq!(broken, broken_names.len());
    let retries = metric_sum(&m1, RECONCILE_ERRORS) - metric_sum(&m0, RECONCILE_ERRORS);
    assert!(
        retries <= 2.0 * broken as f64,
        "{retries} retries of {broken} broken apps over about 5 s: a hot loop"
    );
    // Their retries wrote nothing (no status, no event); the only
    // Deployment and Service written are the last app's.
    assert_eq!(versions().await, v0, "a broken app's status was rewritten");
    assert_eq!(invalid_events().await, e0, "InvalidSpec events repeated");
    for kind in ["Deployment", "Service"] {
        let sample = format!("corefit_operator_api_writes_total{{kind=\"{kind}\",verb=\"apply\"}}");
        let writes = metric_value(&m1, &sample) - metric_value(&m0, &sample);
        assert_eq!(writes, 1.0, "{kind} applies after the batch");
    }
    let restarts = alive_and_same(&mut op, pid);
    assert_eq!(http_get(&op.addr, "/healthz").await.map(|r| r.0), Some(200));
    let log = op.log_text();
    assert!(!log.contains("panicked"), "{}", short_tail(&log));

    let sum = |f: fn(&Tally) -> usize| all.iter().map(f).sum::<usize>();
    record(
        "hostile specs",
        "an ordinary app after the hostile batch",
        "created last, after every group above, on the same operator",
        started.elapsed(),
        &[
            ("tried", sum(|t| t.tried).to_string()),
            ("rejected by schema", sum(|t| t.schema).to_string()),
            ("refused for size", sum(|t| t.too_large).to_string()),
            ("surfaced as condition", sum(|t| t.condition).to_string()),
            ("converged", sum(|t| t.converged).to_string()),
            ("last app converged (s)", format!("{:.2}", last_converged.as_secs_f64())),
            ("retries in 5 s", retries.to_string()),
            ("operator restarts", restarts.to_string()),
        ],
        "converged promptly; broken apps retried with backoff and no writes; operator never restarted",
    );
}

/// The secret-looking values given to the apps below.
const SECRETS: [(&str, &str); 4] = [
    ("DB_PASSWORD", "pw-Zq8vN3xK1"),
    ("API_TOKEN", "tok-Hy7Rb2Lm9"),
    ("AWS_SECRET_ACCESS_KEY", "aws-Jk4Wq6Ps0"),
    ("GITHUB_PRIVATE_KEY", "pk-Fd5Tc8Xv3"),
];

fn secret_env() -> Value {
    SECRETS
        .iter()
        .map(|(n, v)| json!({"name": n, "value": v}))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_env_values_never_reach_logs_events_or_status() {
    let start = Instant::now();
    let (client, ns) = setup("secrets").await;
    // Refuse Services first, so the valid app also goes through a failed
    // write (ApplyFailed) with its secrets in the Deployment applied before.
    refuse_services(&client, &ns, T).await;
    let mut op = Operator::start_with(
        &ns,
        &[
            ("COREFIT_OPERATOR_LOG", "debug"),
            ("COREFIT_OPERATOR_LOG_FORMAT", "json"),
        ],
    )
    .await;
    let pid = op.pid();
    let apps: Api<ClusterApp> = Api::namespaced(client.clone(), &ns);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let mut dup = secret_env();
    dup.as_array_mut()
        .unwrap()
        .push(json!({"name": "DB_PASSWORD", "value": "pw-Zq8vN3xK1-second"}));
    let mut nul = secret_env();
    nul.as_array_mut()
        .unwrap()
        .push(json!({"name": "API_TOKEN_2", "value": "tok-Hy7Rb2Lm9\u{0}"}));
    let mut long = secret_env();
    // 131065 characters (within the schema's bound), 131078 bytes as
    // SIGNING_KEY=value with its NUL (past Linux's 131072).
    long.as_array_mut().unwrap().push(
        json!({"name": "SIGNING_KEY", "value": format!("aws-Jk4Wq6Ps0{}", "k".repeat(131_052))}),
    );
    let cases = [
        (
            "vault",
            json!({"image": "a", "command": ["node", "server.js"], "env": secret_env()}),
            None,
        ),
        (
            "dup-secret",
            json!({"image": "a", "env": dup}),
            Some("DuplicateEnv"),
        ),
        (
            "nul-secret",
            json!({"image": "a", "env": nul}),
            Some("NulCharacter"),
        ),
        (
            "long-secret",
            json!({"image": "a", "env": long}),
            Some("StringTooLong"),
        ),
        (
            "reserved-secret",
            json!({"image": "a", "env": [{"name": "COREFIT_WORKERS", "value": "tok-Hy7Rb2Lm9"}]}),
            Some("ReservedEnv"),
        ),
    ];
    for (name, spec, _) in &cases {
        let app: ClusterApp = serde_json::from_value(json!({
            "apiVersion": "corefit.dev/v1alpha1", "kind": "ClusterApp",
            "metadata": {"name": name}, "spec": spec,
        }))
        .unwrap();
        apps.create(&PostParams::default(), &app).await.unwrap();
    }
    for (name, _, reason) in &cases {
        if let Some(reason) = reason {
            wait_until(&format!("{name} Degraded {reason}"), T, || async {
                apps.get(name).await.is_ok_and(|a| {
                    condition(&a, "Degraded").is_some_and(|c| c.0 == "True" && c.1 == *reason)
                })
            })
            .await;
        }
    }
    wait_until("ApplyFailed for vault's Service", T, || async {
        EventMatch::reason("ApplyFailed")
            .about("vault")
            .seen(&events)
            .await
    })
    .await;
    allow_services(&client, &ns).await;
    wait_condition(&apps, "vault", NOT_DEGRADED, T).await;
    wait_until("DecisionChanged for vault", T, || async {
        EventMatch::reason("DecisionChanged")
            .about("vault")
            .seen(&events)
            .await
    })
    .await;

    // The values went where they belong (so the checks below see them
    // if they leaked)...
    let d = deps.get("vault").await.unwrap();
    let env: Vec<_> = d.spec.template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap();
    for (n, v) in SECRETS {
        assert!(
            env.iter()
                .any(|e| e.name == n && e.value.as_deref() == Some(v)),
            "{n}"
        );
    }
    // ...and nowhere else: not in the operator's log (JSON, debug level),
    // not in any event, not in any status.
    alive_and_same(&mut op, pid);
    let log = op.log_text();
    let evs =
        serde_json::to_string(&events.list(&ListParams::default()).await.unwrap().items).unwrap();
    let statuses: Vec<_> = apps
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|a| a.status)
        .collect();
    let statuses = serde_json::to_string(&statuses).unwrap();
    assert!(
        log.lines().count() > 10,
        "the operator logged almost nothing:\n{log}"
    );
    assert!(
        log.lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "not JSON lines"
    );
    let mut checked = 0;
    for (name, value) in SECRETS {
        for (what, text) in [
            ("operator log", &log),
            ("events", &evs),
            ("statuses", &statuses),
        ] {
            assert!(
                !text.contains(value),
                "the value of {name} is in the {what}"
            );
            checked += 1;
        }
    }
    // The names may be shown (they say which variable is at fault).
    assert!(evs.contains("DB_PASSWORD") && statuses.contains("SIGNING_KEY"));
    record(
        "security",
        "operator: secret env values",
        "apps with DB_PASSWORD, API_TOKEN, AWS_SECRET_ACCESS_KEY, GITHUB_PRIVATE_KEY; valid, duplicate, NUL, 128 KiB, reserved name, a refused Service write; debug JSON logs",
        start.elapsed(),
        &[
            ("apps", cases.len().to_string()),
            ("log lines", log.lines().count().to_string()),
            ("events", events.list(&ListParams::default()).await.unwrap().items.len().to_string()),
            ("places checked", checked.to_string()),
            ("values found", "0".to_owned()),
        ],
        "no secret value in the operator's log, events or status",
    );
}

/// The operator as shipped runs non-root with a read-only root
/// filesystem: deploy/deployment.yaml (the chart rendered with its
/// defaults; tests/helm/test_deploy.py fails when it drifts, and
/// tests/helm/test_security.py checks the chart under other values and its
/// schema) and the final USER of every image.
#[test]
fn the_shipped_operator_runs_non_root_read_only() {
    let start = Instant::now();
    let text = std::fs::read_to_string(repo_root().join("deploy/deployment.yaml")).unwrap();
    let d: Deployment = serde_yaml::from_str(&text).expect("deploy/deployment.yaml");
    let pod = d.spec.template.spec.expect("pod spec");
    let psc = pod.security_context.clone().unwrap_or_default();
    assert_eq!(psc.run_as_non_root, Some(true));
    let mut containers = 0;
    for c in pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
    {
        let sc = c.security_context.clone().unwrap_or_default();
        let uid = sc.run_as_user.or(psc.run_as_user);
        assert!(uid.is_some_and(|u| u > 0), "{}: runAsUser {uid:?}", c.name);
        let gid = sc.run_as_group.or(psc.run_as_group);
        assert!(gid.is_some_and(|g| g > 0), "{}: runAsGroup {gid:?}", c.name);
        assert_eq!(sc.run_as_non_root.or(psc.run_as_non_root), Some(true));
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
        assert_ne!(sc.privileged, Some(true), "{}", c.name);
        let caps = sc.capabilities.unwrap_or_default();
        assert!(caps.drop.unwrap_or_default().iter().any(|c| c == "ALL"));
        assert!(caps.add.unwrap_or_default().is_empty());
        containers += 1;
    }
    let mut images = 0;
    for file in [
        "operator/Dockerfile",
        "launcher/Dockerfile",
        "examples/node-app/Dockerfile",
    ] {
        let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let last_from = lines
            .iter()
            .rposition(|l| l.trim_start().starts_with("FROM "))
            .expect("FROM");
        let user = lines[last_from..]
            .iter()
            .rev()
            .find_map(|l| l.trim().strip_prefix("USER "))
            .unwrap_or_else(|| panic!("{file}: no USER in the final stage"));
        let ids: Vec<u32> = user
            .split(':')
            .map(|p| {
                p.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{file}: USER {user} is not numeric"))
            })
            .collect();
        assert!(
            ids.len() == 2 && ids.iter().all(|&i| i > 0),
            "{file}: USER {user}"
        );
        images += 1;
    }
    record(
        "security",
        "operator image and manifests",
        "deploy/deployment.yaml (the chart's default render) and the final USER of the 3 Dockerfiles",
        start.elapsed(),
        &[
            ("containers checked", containers.to_string()),
            ("images checked", images.to_string()),
            ("runAsUser", psc.run_as_user.unwrap_or(0).to_string()),
            ("root or writable root found", "0".to_owned()),
        ],
        "non-root numeric uid/gid, read-only root filesystem, no escalation, all capabilities dropped",
    );
}
