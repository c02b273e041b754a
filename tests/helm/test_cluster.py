"""The chart against a real kube-apiserver (1.20.2, from tests/k8s) through
the real Helm engine: install, RBAC with the ServiceAccount's own token,
upgrade, uninstall; then deploy/ applied with kubectl yields the same
objects.

The steps share one release and run in file order: install -> RBAC ->
upgrade -> uninstall -> deploy/. Each step asserts its own preconditions.
"""

from __future__ import annotations

import copy
import os
import shutil
import signal
import socket
import subprocess
import urllib.request

import helm_python as helm
import pytest
import yaml

from chartlib import CHART, DEPLOY, NAMESPACE, RELEASE, objects, render
from kube import ApiError, Kube, path_of, until

SA = RELEASE  # the ServiceAccount's name with default values
LEASE = RELEASE  # the Lease the leader-election Role allows
APPS_NS = "rbac-probe"  # where the RBAC checks write as the operator
CA = "/apis/corefit.dev/v1alpha1"


def helm_config(kubeconfig: str) -> helm.Config:
    return helm.Config(kubeconfig_path=kubeconfig, namespace=NAMESPACE)


# Fields the server or Helm adds that say nothing about what was installed.
_DROP_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")
_DROP_ANNOTATION_PREFIXES = ("meta.helm.sh/", "kubectl.kubernetes.io/", "deployment.kubernetes.io/")


def normalize(live: dict) -> dict:
    o = copy.deepcopy(live)
    md = o["metadata"]
    keep = {k: md[k] for k in ("name", "namespace") if k in md}
    labels = {k: v for k, v in (md.get("labels") or {}).items() if k not in _DROP_LABELS}
    ann = {
        k: v for k, v in (md.get("annotations") or {}).items()
        if not k.startswith(_DROP_ANNOTATION_PREFIXES)
    }
    if labels:
        keep["labels"] = labels
    if ann:
        keep["annotations"] = ann
    o["metadata"] = keep
    o.pop("status", None)
    if o["kind"] == "ServiceAccount":
        o.pop("secrets", None)  # token secrets get random names
    if o["kind"] == "Service":
        o["spec"].pop("clusterIP", None)
        o["spec"].pop("clusterIPs", None)
    return o


def live_objects(kube: Kube, rendered: list[dict]) -> dict[tuple, dict]:
    return {
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): normalize(
            kube.get(path_of(o, NAMESPACE))
        )
        for o in rendered
    }


@pytest.fixture(scope="module")
def release(kube: Kube, kubeconfig: str):
    """Installs the chart with default values; uninstalls at the end if a
    test left it installed."""
    cfg = helm_config(kubeconfig)
    cfg.check_reachable()
    if cfg.list(all_states=True, name_filter=f"^{RELEASE}$"):
        pytest.fail(f"release {RELEASE} already exists in {NAMESPACE}: the control plane is not fresh")
    rel = cfg.install(str(CHART), RELEASE, {}, namespace=NAMESPACE, create_namespace=True, timeout=120)
    rendered = objects(render())
    state = {"cfg": cfg, "release": rel, "rendered": rendered, "snapshot": live_objects(kube, rendered)}
    yield state
    if cfg.list(all_states=True, name_filter=f"^{RELEASE}$"):
        cfg.uninstall(RELEASE, timeout=60)
    cfg.close()


def test_01_install_refuses_values_that_break_the_schema(kube: Kube, kubeconfig: str):
    with helm_config(kubeconfig) as cfg:
        with pytest.raises(helm.HelmError) as e:
            cfg.install(str(CHART), "bad-values", {"replicaCount": -1}, namespace="default", timeout=30)
        assert "/replicaCount" in str(e.value), str(e.value)
        assert cfg.list(all_states=True, name_filter="^bad-values$") == []
    assert not kube.exists("/apis/apps/v1/namespaces/default/deployments/bad-values-corefit-operator")


def test_02_install_creates_every_object(kube: Kube, release):
    rel = release["release"]
    assert rel["name"] == RELEASE
    assert rel["status"] == "deployed", rel["status"]
    assert rel["revision"] == 1
    for o in release["rendered"]:
        assert kube.exists(path_of(o, NAMESPACE)), f"{o['kind']} {o['metadata']['name']} was not created"
    dep = kube.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{RELEASE}")
    assert dep["spec"]["replicas"] == 2
    sc = dep["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"]["drop"] == ["ALL"]
    # The controller-manager acts on it: a ReplicaSet with two pods (Pending:
    # there is no kubelet here).
    until(
        "the operator Deployment's ReplicaSet has 2 replicas",
        lambda: any(
            rs["spec"]["replicas"] == 2
            for rs in kube.get(
                f"/apis/apps/v1/namespaces/{NAMESPACE}/replicasets",
                query={"labelSelector": f"app.kubernetes.io/instance={RELEASE}"},
            )["items"]
        ),
        deadline_s=30,
    )


def test_03_crd_is_installed_and_served(kube: Kube, release):
    crd = kube.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/clusterapps.corefit.dev")
    until(
        "CRD clusterapps.corefit.dev Established",
        lambda: any(
            c["type"] == "Established" and c["status"] == "True"
            for c in kube.get(
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/clusterapps.corefit.dev"
            ).get("status", {}).get("conditions", [])
        ),
    )
    assert crd["spec"]["group"] == "corefit.dev"
    until("ClusterApps are served", lambda: kube.get(f"{CA}/clusterapps") is not None)


@pytest.fixture(scope="module")
def operator_identity(kube: Kube, release) -> Kube:
    """A client that is the chart's ServiceAccount: a real token from the
    TokenRequest API, no impersonation."""
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": APPS_NS}}
    kube.apply(f"/api/v1/namespaces/{APPS_NS}", ns)
    token = kube.service_account_token(NAMESPACE, SA)
    sa = kube.as_token(token)
    who = sa.request(
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
         "spec": {"nonResourceAttributes": {"path": "/api", "verb": "get"}}},
    )
    assert who["status"]["allowed"], "the ServiceAccount token does not authenticate"
    return sa


# (verb, group, resource, subresource, namespace, name): what the operator does.
GRANTED = [
    ("get", "corefit.dev", "clusterapps", "", APPS_NS, ""),
    ("list", "corefit.dev", "clusterapps", "", "", ""),
    ("watch", "corefit.dev", "clusterapps", "", "", ""),
    ("patch", "corefit.dev", "clusterapps", "status", APPS_NS, "x"),
    ("update", "corefit.dev", "clusterapps", "finalizers", APPS_NS, "x"),
    *[(v, "apps", "deployments", "", APPS_NS, "") for v in ("get", "list", "watch", "create", "patch")],
    *[(v, "", "services", "", APPS_NS, "") for v in ("get", "list", "watch", "create", "patch")],
    *[(v, "autoscaling", "horizontalpodautoscalers", "", APPS_NS, "") for v in ("get", "create", "patch", "delete")],
    *[(v, "policy", "poddisruptionbudgets", "", APPS_NS, "") for v in ("get", "create", "patch", "delete")],
    ("create", "events.k8s.io", "events", "", APPS_NS, ""),
    ("create", "coordination.k8s.io", "leases", "", NAMESPACE, ""),
    *[(v, "coordination.k8s.io", "leases", "", NAMESPACE, LEASE) for v in ("get", "patch")],
]

# Things it never does: each must be refused.
REFUSED = [
    ("delete", "", "secrets", "", NAMESPACE, "x"),
    ("get", "", "secrets", "", APPS_NS, ""),
    ("list", "", "secrets", "", "", ""),
    ("create", "", "pods", "", APPS_NS, ""),
    ("delete", "", "pods", "", APPS_NS, ""),
    ("create", "", "configmaps", "", APPS_NS, ""),
    ("create", "", "events", "", APPS_NS, ""),  # core/v1 events: it uses events.k8s.io
    ("patch", "events.k8s.io", "events", "", APPS_NS, "x"),  # creates each event once
    ("delete", "apps", "deployments", "", APPS_NS, ""),  # the garbage collector does that
    ("update", "apps", "deployments", "scale", APPS_NS, ""),
    ("delete", "", "services", "", APPS_NS, ""),
    ("create", "corefit.dev", "clusterapps", "", APPS_NS, ""),
    ("patch", "corefit.dev", "clusterapps", "", APPS_NS, "x"),  # never writes a spec
    ("delete", "corefit.dev", "clusterapps", "", APPS_NS, "x"),
    ("update", "corefit.dev", "clusterapps", "scale", APPS_NS, "x"),
    ("create", "apiextensions.k8s.io", "customresourcedefinitions", "", "", ""),
    ("patch", "rbac.authorization.k8s.io", "clusterroles", "", "", RELEASE),
    ("create", "rbac.authorization.k8s.io", "rolebindings", "", NAMESPACE, ""),
    ("create", "coordination.k8s.io", "leases", "", APPS_NS, ""),  # only its own namespace
    ("update", "coordination.k8s.io", "leases", "", NAMESPACE, "someone-elses-lease"),
    ("delete", "coordination.k8s.io", "leases", "", NAMESPACE, LEASE),
    ("list", "coordination.k8s.io", "leases", "", NAMESPACE, ""),
    ("list", "autoscaling", "horizontalpodautoscalers", "", "", ""),  # read one by one, never cached
    ("list", "policy", "poddisruptionbudgets", "", "", ""),
    ("create", "", "serviceaccounts", "token", NAMESPACE, SA),
    ("impersonate", "", "users", "", "", "admin"),
]


def _ids(rows):
    return [f"{v} {g or 'core'}/{r}{'/' + s if s else ''} ns={n or '*'} {nm}".strip() for v, g, r, s, n, nm in rows]


@pytest.mark.parametrize("verb,group,resource,sub,ns,name", GRANTED, ids=_ids(GRANTED))
def test_04_operator_identity_is_allowed(operator_identity: Kube, verb, group, resource, sub, ns, name):
    allowed, reason = operator_identity.can_i(verb, group, resource, ns, name, sub)
    assert allowed, f"the operator's ServiceAccount may not {verb} {group}/{resource}/{sub} in {ns!r}: {reason}"


@pytest.mark.parametrize("verb,group,resource,sub,ns,name", REFUSED, ids=_ids(REFUSED))
def test_05_operator_identity_is_refused(operator_identity: Kube, verb, group, resource, sub, ns, name):
    allowed, reason = operator_identity.can_i(verb, group, resource, ns, name, sub)
    assert not allowed, f"the operator's ServiceAccount may {verb} {group}/{resource}/{sub} in {ns!r} ({reason}): too much"


def test_06_operator_identity_does_the_operators_writes(kube: Kube, operator_identity: Kube):
    """Real requests as the ServiceAccount, the way the operator makes them."""
    sa = operator_identity
    app = {"apiVersion": "corefit.dev/v1alpha1", "kind": "ClusterApp",
           "metadata": {"name": "probe", "namespace": APPS_NS}, "spec": {"image": "example.test/app:1"}}
    created = kube.request("POST", f"{CA}/namespaces/{APPS_NS}/clusterapps", app)
    uid = created["metadata"]["uid"]
    assert sa.get(f"{CA}/clusterapps")["items"], "list across namespaces"
    owner = [{"apiVersion": "corefit.dev/v1alpha1", "kind": "ClusterApp", "name": "probe", "uid": uid,
              "controller": True, "blockOwnerDeletion": True}]
    labels = {"app.kubernetes.io/name": "probe"}
    dep = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "probe", "namespace": APPS_NS, "ownerReferences": owner, "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "app", "image": "example.test/app:1"}]}}},
    }
    # Server-side apply creates (checked as create) and then updates (patch).
    sa.apply(f"/apis/apps/v1/namespaces/{APPS_NS}/deployments/probe", dep, "corefit-operator")
    dep["spec"]["replicas"] = 2
    assert sa.apply(f"/apis/apps/v1/namespaces/{APPS_NS}/deployments/probe", dep, "corefit-operator")["spec"]["replicas"] == 2
    svc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "probe", "namespace": APPS_NS, "ownerReferences": owner},
           "spec": {"selector": labels, "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}}
    sa.apply(f"/api/v1/namespaces/{APPS_NS}/services/probe", svc, "corefit-operator")
    status = {"apiVersion": "corefit.dev/v1alpha1", "kind": "ClusterApp",
              "metadata": {"name": "probe", "namespace": APPS_NS}, "status": {"observedGeneration": 1}}
    got = sa.apply(f"{CA}/namespaces/{APPS_NS}/clusterapps/probe/status", status, "corefit-operator")
    assert got["status"]["observedGeneration"] == 1
    ev = {"apiVersion": "events.k8s.io/v1", "kind": "Event",
          "metadata": {"name": "probe.1", "namespace": APPS_NS},
          "eventTime": "2026-01-01T00:00:00.000000Z", "action": "Reconcile", "reason": "DecisionChanged",
          "note": "rbac probe", "type": "Normal", "reportingController": "corefit-operator",
          "reportingInstance": "corefit-operator-0",
          "regarding": {"apiVersion": "corefit.dev/v1alpha1", "kind": "ClusterApp", "name": "probe",
                        "namespace": APPS_NS, "uid": uid}}
    sa.request("POST", f"/apis/events.k8s.io/v1/namespaces/{APPS_NS}/events", ev)
    # HPA and PDB in whatever version this server serves (1.20: autoscaling/v2beta2,
    # policy/v1beta1): RBAC rules are per group, so both versions are covered.
    hpa_v, pdb_v = served_versions(kube)
    hpa = {"apiVersion": f"autoscaling/{hpa_v}", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "probe", "namespace": APPS_NS, "ownerReferences": owner},
           "spec": {"scaleTargetRef": {"apiVersion": "corefit.dev/v1alpha1", "kind": "ClusterApp", "name": "probe"},
                    "minReplicas": 2, "maxReplicas": 5,
                    "metrics": [{"type": "Resource", "resource": {
                        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}}
    sa.apply(f"/apis/autoscaling/{hpa_v}/namespaces/{APPS_NS}/horizontalpodautoscalers/probe", hpa, "corefit-operator")
    pdb = {"apiVersion": f"policy/{pdb_v}", "kind": "PodDisruptionBudget",
           "metadata": {"name": "probe", "namespace": APPS_NS, "ownerReferences": owner},
           "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}}}
    sa.apply(f"/apis/policy/{pdb_v}/namespaces/{APPS_NS}/poddisruptionbudgets/probe", pdb, "corefit-operator")
    sa.request("DELETE", f"/apis/autoscaling/{hpa_v}/namespaces/{APPS_NS}/horizontalpodautoscalers/probe")
    sa.request("DELETE", f"/apis/policy/{pdb_v}/namespaces/{APPS_NS}/poddisruptionbudgets/probe")
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": LEASE, "namespace": NAMESPACE},
             "spec": {"holderIdentity": "corefit-operator-0", "leaseDurationSeconds": 15}}
    sa.request("POST", f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases", lease)
    sa.get(f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{LEASE}")
    taken = sa.request("PATCH", f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{LEASE}",
                       {"spec": {"holderIdentity": "corefit-operator-1"}},
                       content_type="application/strategic-merge-patch+json")
    assert taken["spec"]["holderIdentity"] == "corefit-operator-1"
    kube.request("DELETE", f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{LEASE}")


def test_07_operator_identity_cannot_delete_a_secret(kube: Kube, operator_identity: Kube):
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "not-yours", "namespace": APPS_NS},
              "stringData": {"k": "v"}}
    kube.apply(f"/api/v1/namespaces/{APPS_NS}/secrets/not-yours", secret)
    with pytest.raises(ApiError) as e:
        operator_identity.request("DELETE", f"/api/v1/namespaces/{APPS_NS}/secrets/not-yours")
    assert e.value.status == 403, e.value
    assert "forbidden" in e.value.body
    assert kube.exists(f"/api/v1/namespaces/{APPS_NS}/secrets/not-yours"), "the Secret is gone"
    for method, path in [
        ("GET", f"/api/v1/namespaces/{APPS_NS}/secrets/not-yours"),
        ("DELETE", f"/apis/apps/v1/namespaces/{APPS_NS}/deployments/probe"),
        ("DELETE", f"{CA}/namespaces/{APPS_NS}/clusterapps/probe"),
    ]:
        assert operator_identity.status_of(method, path) == 403, f"{method} {path} was not refused"


def served_versions(kube: Kube) -> tuple[str, str]:
    """The HPA and PDB versions this server serves, newest first (as the
    operator's discovery picks them)."""
    served = {g["name"]: [v["version"] for v in g["versions"]] for g in kube.get("/apis")["groups"]}
    hpa_v = next(v for v in ("v2", "v2beta2") if v in served["autoscaling"])
    pdb_v = next(v for v in ("v1", "v1beta1") if v in served["policy"])
    return hpa_v, pdb_v


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def chart_env(values: dict, release_name: str, namespace: str, pod_name: str) -> dict[str, str]:
    """The operator container's environment from the rendered chart."""
    dep = next(o for o in objects(render(values, name=release_name, namespace=namespace)) if o["kind"] == "Deployment")
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    fields = {"metadata.name": pod_name, "metadata.namespace": namespace}
    env = {}
    for e in container["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            env[e["name"]] = fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def run_operator_as(kube: Kube, sa_ns: str, sa_name: str, app_ns: str, tmp_path, values=None, release_name=RELEASE) -> None:
    """Runs the real operator binary with nothing but the ServiceAccount's
    token: its caches must sync (list/watch), it must reconcile a ClusterApp
    in `app_ns` into a Deployment, a Service, a status and an event, no
    request of it may be forbidden, and SIGTERM must stop it with status 0."""
    binary = os.environ.get("COREFIT_OPERATOR_BIN", "")
    assert binary and os.access(binary, os.X_OK), (
        "COREFIT_OPERATOR_BIN must name the built corefit-operator binary (tests/helm/run.sh builds it)"
    )
    token = kube.service_account_token(sa_ns, sa_name, 3600)
    kubeconfig = tmp_path / "operator-sa.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": {"server": kube.server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": sa_name, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": sa_name, "namespace": sa_ns}}],
    }))
    port = _free_port()
    log_path = tmp_path / "operator.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "COREFIT_OPERATOR_", "POD_"))}
    # The environment the chart gives the operator container, as the kubelet
    # would resolve it; only the listen address moves to 127.0.0.1.
    pod_name = f"{release_name}-test-0"
    env.update(chart_env(values or {}, release_name, sa_ns, pod_name=pod_name))
    leader_election = env.get("COREFIT_OPERATOR_LEADER_ELECTION") == "true"
    lease_path = (f"/apis/coordination.k8s.io/v1/namespaces/{sa_ns}/leases/"
                  f"{env.get('COREFIT_OPERATOR_LEASE_NAME', '')}")
    env.update({
        "KUBECONFIG": str(kubeconfig),
        "COREFIT_OPERATOR_METRICS_ADDR": f"127.0.0.1:{port}",
        "COREFIT_OPERATOR_LOG": "info,kube=info",
    })
    app_name = "sa-app"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([binary], env=env, stdout=log, stderr=subprocess.STDOUT)

    def logs() -> str:
        return log_path.read_text(errors="replace")

    try:
        def ready() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"the operator exited with {proc.returncode}:\n{logs()}")
            return _http_ok(f"http://127.0.0.1:{port}/readyz")

        until(f"the operator (as {sa_ns}/{sa_name}) reports ready on /readyz", ready, deadline_s=60)
        if leader_election:
            # The chart turns leader election on: the operator must win its
            # Lease (create + patch with only the Role's rights) to reconcile.
            until(f"the operator holds the Lease {lease_path}",
                  lambda: kube.exists(lease_path)
                  and kube.get(lease_path)["spec"].get("holderIdentity") == pod_name, deadline_s=60)
        app = {"apiVersion": "corefit.dev/v1alpha1", "kind": "ClusterApp",
               "metadata": {"name": app_name, "namespace": app_ns},
               "spec": {"image": "example.test/app:1", "port": 8080, "resources": {"cpu": "500m"},
                        "scaling": {"autoscaling": {"minReplicas": 2, "maxReplicas": 4}}}}
        kube.request("POST", f"{CA}/namespaces/{app_ns}/clusterapps", app)
        dep = until("the operator applied the app's Deployment",
                    lambda: kube.exists(f"/apis/apps/v1/namespaces/{app_ns}/deployments/{app_name}")
                    and kube.get(f"/apis/apps/v1/namespaces/{app_ns}/deployments/{app_name}"),
                    deadline_s=60)
        assert dep["metadata"]["ownerReferences"][0]["name"] == app_name
        until("the operator applied the app's Service",
              lambda: kube.exists(f"/api/v1/namespaces/{app_ns}/services/{app_name}"), deadline_s=30)
        until("the operator wrote the app's status",
              lambda: kube.get(f"{CA}/namespaces/{app_ns}/clusterapps/{app_name}").get("status", {})
              .get("observedGeneration"), deadline_s=30)
        until("the operator recorded an event on the app",
              lambda: [e for e in kube.get(f"/apis/events.k8s.io/v1/namespaces/{app_ns}/events")["items"]
                       if e.get("regarding", {}).get("name") == app_name], deadline_s=30)
        # Autoscaling from 2 pods: an HPA and a PDB in the versions served here,
        # then both deleted when the spec drops them.
        hpa_v, pdb_v = served_versions(kube)
        hpa = f"/apis/autoscaling/{hpa_v}/namespaces/{app_ns}/horizontalpodautoscalers/{app_name}"
        pdb = f"/apis/policy/{pdb_v}/namespaces/{app_ns}/poddisruptionbudgets/{app_name}"
        until(f"the operator created the HPA ({hpa_v})", lambda: kube.exists(hpa), deadline_s=30)
        until(f"the operator created the PDB ({pdb_v})", lambda: kube.exists(pdb), deadline_s=30)
        kube.request("PATCH", f"{CA}/namespaces/{app_ns}/clusterapps/{app_name}",
                     {"spec": {"scaling": {"autoscaling": None, "replicas": 1}}},
                     content_type="application/merge-patch+json")
        until("the operator deleted the HPA", lambda: not kube.exists(hpa), deadline_s=30)
        until("the operator deleted the PDB", lambda: not kube.exists(pdb), deadline_s=30)
        text = logs()
        assert "forbidden" not in text.lower(), f"the operator was refused something:\n{text}"
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- operator log (last 40 lines) ---\n" + "\n".join(logs().splitlines()[-40:])) from None
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                pytest.fail(f"the operator ignored SIGTERM for 30s:\n{logs()}")
        kube.status_of("DELETE", f"{CA}/namespaces/{app_ns}/clusterapps/{app_name}")
    assert proc.returncode == 0, f"operator exit code {proc.returncode}:\n{logs()}"
    if leader_election:
        holder = kube.get(lease_path)["spec"].get("holderIdentity")
        assert holder in (None, ""), f"the operator did not release its Lease on SIGTERM (holder {holder!r})"


def test_07b_the_operator_runs_with_its_service_account(kube: Kube, operator_identity: Kube, tmp_path):
    run_operator_as(kube, NAMESPACE, SA, APPS_NS, tmp_path)


SCOPED_RELEASE = "scoped"
SCOPED_NS = "corefit-scoped"
SCOPED_APPS = "scoped-apps"


def test_07c_watching_one_namespace_grants_that_namespace_only(kube: Kube, kubeconfig: str, release, tmp_path):
    """A second release with operator.watchNamespace: a Role in that
    namespace instead of a ClusterRole; the operator, run as its
    ServiceAccount and told to watch that namespace, still does its job."""
    kube.apply(f"/api/v1/namespaces/{SCOPED_APPS}", {"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": SCOPED_APPS}})
    values = {"operator": {"watchNamespace": SCOPED_APPS}}
    sa_name = f"{SCOPED_RELEASE}-corefit-operator"
    with helm.Config(kubeconfig_path=kubeconfig, namespace=SCOPED_NS) as cfg:
        cfg.install(str(CHART), SCOPED_RELEASE, values, namespace=SCOPED_NS, create_namespace=True, timeout=120)
        try:
            rbac = "/apis/rbac.authorization.k8s.io/v1"
            assert kube.exists(f"{rbac}/namespaces/{SCOPED_APPS}/roles/{sa_name}")
            assert kube.exists(f"{rbac}/namespaces/{SCOPED_APPS}/rolebindings/{sa_name}")
            assert not kube.exists(f"{rbac}/clusterroles/{sa_name}")
            sa = kube.as_token(kube.service_account_token(SCOPED_NS, sa_name))
            for verb, group, res, ns, want in [
                ("list", "corefit.dev", "clusterapps", SCOPED_APPS, True),
                ("watch", "corefit.dev", "clusterapps", SCOPED_APPS, True),
                ("create", "apps", "deployments", SCOPED_APPS, True),
                ("create", "events.k8s.io", "events", SCOPED_APPS, True),
                ("list", "corefit.dev", "clusterapps", "", False),
                ("list", "corefit.dev", "clusterapps", APPS_NS, False),
                ("create", "apps", "deployments", APPS_NS, False),
                ("patch", "", "services", "default", False),
                ("get", "", "secrets", SCOPED_APPS, False),
            ]:
                allowed, reason = sa.can_i(verb, group, res, ns)
                assert allowed == want, f"{verb} {group}/{res} in {ns or 'all namespaces'}: allowed={allowed} ({reason})"
            run_operator_as(kube, SCOPED_NS, sa_name, SCOPED_APPS, tmp_path, values, SCOPED_RELEASE)
        finally:
            cfg.uninstall(SCOPED_RELEASE, timeout=120)
    until("the scoped release's Role is gone",
          lambda: not kube.exists(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{SCOPED_APPS}/roles/{sa_name}"))


def test_08_upgrade_changes_the_release(kube: Kube, kubeconfig: str, release):
    cfg = release["cfg"]
    rel = cfg.upgrade(str(CHART), RELEASE, {"replicaCount": 3, "operator": {"logFormat": "text"}},
                      namespace=NAMESPACE, timeout=120)
    assert rel["revision"] == 2 and rel["status"] == "deployed", (rel["revision"], rel["status"])
    dep = kube.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{RELEASE}")
    assert dep["spec"]["replicas"] == 3
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["COREFIT_OPERATOR_LOG_FORMAT"] == "text"
    with pytest.raises(helm.HelmError) as e:
        cfg.upgrade(str(CHART), RELEASE, {"metrics": {"port": 0}}, namespace=NAMESPACE, timeout=60)
    assert "/metrics/port" in str(e.value)
    rel = cfg.upgrade(str(CHART), RELEASE, {}, namespace=NAMESPACE, reset_values=True, timeout=120)
    assert rel["revision"] == 3 and rel["status"] == "deployed"
    assert kube.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{RELEASE}")["spec"]["replicas"] == 2


def test_09_uninstall_removes_what_it_installed(kube: Kube, release):
    cfg = release["cfg"]
    cfg.uninstall(RELEASE, timeout=120)
    assert cfg.list(all_states=True, name_filter=f"^{RELEASE}$") == []
    for o in release["rendered"]:
        p = path_of(o, NAMESPACE)
        until(f"{o['kind']} {o['metadata']['name']} deleted", lambda p=p: not kube.exists(p))
    helm_secrets = kube.get(f"/api/v1/namespaces/{NAMESPACE}/secrets", query={"labelSelector": "owner=helm"})
    assert helm_secrets["items"] == [], "Helm's release records are still there"
    # Helm never deletes a chart's crds/: the ClusterApps survive an uninstall.
    assert kube.exists("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/clusterapps.corefit.dev")


def kubectl(kubeconfig: str, *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("kubectl")
    assert exe, "kubectl is needed (Debian: apt-get install kubernetes-client)"
    return subprocess.run([exe, "--kubeconfig", kubeconfig, *args], capture_output=True, text=True, timeout=120)


def test_10_deploy_dir_yields_the_same_objects_as_the_chart(kube: Kube, kubeconfig: str, release):
    for o in release["rendered"]:
        assert not kube.exists(path_of(o, NAMESPACE)), "the Helm release is still installed"
    out = kubectl(kubeconfig, "apply", "--server-side", "-k", str(DEPLOY))
    assert out.returncode == 0, out.stderr
    got = live_objects(kube, release["rendered"])
    want = release["snapshot"]
    assert sorted(got) == sorted(want)
    for key in sorted(want):
        g, w = got[key], want[key]
        # deploy/ says it was applied by kubectl, not Helm; everything else is equal.
        assert g == w, f"{key}: deploy/ and the chart differ:\n{yaml.safe_dump(g)}\n---\n{yaml.safe_dump(w)}"
    assert kube.exists(f"/api/v1/namespaces/{NAMESPACE}")
    out = kubectl(kubeconfig, "delete", "-k", str(DEPLOY), "--wait=false")
    assert out.returncode == 0, out.stderr
    for o in release["rendered"]:
        if o["metadata"].get("namespace") is None:  # cluster-scoped: gone at once
            p = path_of(o, NAMESPACE)
            until(f"{o['kind']} {o['metadata']['name']} deleted", lambda p=p: not kube.exists(p))
