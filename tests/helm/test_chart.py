"""The chart through the real Helm engine, offline: lint, render, schema,
the CRD's single source, the README's values table."""

from __future__ import annotations

import os
import re

import helm_python as helm
import pytest
import yaml

from chartlib import (
    CHART,
    CRD,
    NAMESPACE,
    RELEASE,
    assert_schema_refuses,
    load_chart,
    objects,
    render,
)

WARNING = 2  # lint severities: 1 info, 2 warning, 3 error


def by_kind(objs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for o in objs:
        out.setdefault(o["kind"], []).append(o)
    return out


def one(objs: list[dict], kind: str) -> dict:
    found = by_kind(objs).get(kind, [])
    assert len(found) == 1, f"want exactly one {kind}, got {len(found)}"
    return found[0]


@pytest.mark.parametrize("kube_version", ["v1.20.2", "v1.33.0"])
def test_lints_clean_in_strict_mode(kube_version):
    report = helm.lint(CHART, strict=True, namespace=NAMESPACE, kube_version=kube_version)
    assert report["errors"] == [], report
    bad = [m for m in report["messages"] if m["severity"] >= WARNING]
    assert bad == [], f"lint warnings/errors: {bad}"
    assert report["total_charts_linted"] == 1


def test_default_values_pass_the_schema():
    with load_chart() as chart:
        assert chart.schema is not None, "values.schema.json is missing"
        chart.validate_schema(chart.values)
        chart.validate_schema({})


def test_renders_the_expected_objects():
    objs = objects(render())
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in objs)
    assert kinds == sorted(
        [
            ("ServiceAccount", "corefit-operator"),
            ("ClusterRole", "corefit-operator"),
            ("ClusterRoleBinding", "corefit-operator"),
            ("Role", "corefit-operator-leader-election"),
            ("RoleBinding", "corefit-operator-leader-election"),
            ("Deployment", "corefit-operator"),
            ("Service", "corefit-operator-metrics"),
        ]
    )
    for o in objs:
        if o["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert o["metadata"]["namespace"] == NAMESPACE, o["metadata"]


def test_deployment_is_two_hardened_replicas_with_probes():
    objs = objects(render())
    dep = one(objs, "Deployment")
    assert dep["spec"]["replicas"] == 2
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == one(objs, "ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    assert c["resources"]["limits"]["memory"]
    assert c["image"] == "corefit/corefit-operator:0.1.0"
    env = {e["name"]: e.get("value") for e in c["env"]}
    # The operator's own settings (operator/src/cli.rs).
    assert env["COREFIT_OPERATOR_METRICS_ADDR"] == "0.0.0.0:8080"
    assert env["COREFIT_OPERATOR_LOG_FORMAT"] == "json"
    assert env["COREFIT_OPERATOR_NAMESPACE"] == ""
    assert env["COREFIT_OPERATOR_NODE_CPUS"] == "64"
    assert env["COREFIT_OPERATOR_LEADER_ELECTION"] == "true"
    assert env["COREFIT_OPERATOR_LEASE_NAME"] == "corefit-operator"
    assert env["COREFIT_OPERATOR_LEASE_DURATION"] == "15"
    assert env["COREFIT_OPERATOR_LAUNCHER_IMAGE"] == "corefit/corefit:0.1.0"
    downward = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in c["env"] if "valueFrom" in e}
    assert downward == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}


def test_metrics_service_selects_the_operator_pods():
    objs = objects(render())
    svc = one(objs, "Service")
    dep = one(objs, "Deployment")
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert dep["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"]
    assert svc["spec"]["ports"] == [
        {"name": "http-metrics", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]


def test_values_reach_the_manifests():
    objs = objects(
        render(
            {
                "replicaCount": 3,
                "image": {"repository": "example.test/op", "tag": "v9", "pullPolicy": "Always"},
                "operator": {"watchNamespace": "apps", "logFormat": "text", "nodeCpus": 8},
                "metrics": {"port": 9100, "service": {"port": 9200}},
                "leaderElection": {"leaseName": "my-lease"},
            }
        )
    )
    dep = one(objs, "Deployment")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert dep["spec"]["replicas"] == 3
    assert c["image"] == "example.test/op:v9"
    assert env["COREFIT_OPERATOR_NAMESPACE"] == "apps"
    assert env["COREFIT_OPERATOR_LOG_FORMAT"] == "text"
    assert env["COREFIT_OPERATOR_NODE_CPUS"] == "8"
    assert env["COREFIT_OPERATOR_METRICS_ADDR"] == "0.0.0.0:9100"
    assert c["ports"][0]["containerPort"] == 9100
    assert one(objs, "Service")["spec"]["ports"][0]["port"] == 9200
    (election,) = [o for o in objs if o["kind"] == "Role" and o["metadata"]["name"].endswith("-leader-election")]
    assert ["my-lease"] in [r.get("resourceNames") for r in election["rules"]]
    assert election["metadata"]["namespace"] == NAMESPACE


def test_watching_one_namespace_grants_rights_in_that_namespace_only():
    everywhere = objects(render())
    scoped = objects(render({"operator": {"watchNamespace": "apps"}}))
    kinds = by_kind(scoped)
    assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds, sorted(kinds)
    (role,) = [o for o in kinds["Role"] if o["metadata"]["name"] == RELEASE]
    (binding,) = [o for o in kinds["RoleBinding"] if o["metadata"]["name"] == RELEASE]
    assert role["metadata"]["namespace"] == "apps" and binding["metadata"]["namespace"] == "apps"
    assert role["rules"] == one(everywhere, "ClusterRole")["rules"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": RELEASE}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}]


def test_rbac_and_service_account_can_be_turned_off():
    objs = objects(
        render(
            {
                "rbac": {"create": False},
                "serviceAccount": {"create": False, "name": "ops"},
                "metrics": {"service": {"enabled": False}},
            }
        )
    )
    kinds = {o["kind"] for o in objs}
    assert kinds == {"Deployment"}, kinds
    assert one(objs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "ops"


def test_notes_render():
    notes = render()["corefit-operator/templates/NOTES.txt"]
    assert f'release "{RELEASE}"' in notes
    assert "kubectl apply --server-side -f crds/" in notes


BAD_VALUES = [
    ({"replicaCount": 0}, "/replicaCount"),
    ({"replicaCount": "two"}, "/replicaCount"),
    ({"image": {"repository": "", "pullPolicy": "IfNotPresent"}}, "/image/repository"),
    ({"image": {"repository": "x", "pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"operator": {"logFormat": "xml"}}, "/operator/logFormat"),
    ({"operator": {"watchNamespace": "Not_A_Namespace"}}, "/operator/watchNamespace"),
    ({"operator": {"nodeCpus": 0}}, "/operator/nodeCpus"),
    ({"metrics": {"port": 70000}}, "/metrics/port"),
    ({"resources": {"limits": {"memory": "lots"}}}, "/resources/limits/memory"),
    ({"securityContext": {"allowPrivilegeEscalation": True}}, "/securityContext/allowPrivilegeEscalation"),
    ({"securityContext": {"runAsNonRoot": False}}, "/securityContext/runAsNonRoot"),
    ({"podSecurityContext": {"runAsNonRoot": False}}, "/podSecurityContext/runAsNonRoot"),
    ({"replicas": 2}, "additional properties 'replicas'"),
    ({"leaderElection": {"enable": True}}, "additional properties 'enable'"),
]


@pytest.mark.parametrize("values,where", BAD_VALUES, ids=[w for _, w in BAD_VALUES])
def test_schema_rejects_bad_values_with_a_message(values, where):
    assert_schema_refuses(values, where)


def test_render_refuses_values_that_break_the_schema():
    # What `helm install`/`template` do with bad values: refuse, naming the key.
    with pytest.raises(helm.HelmError) as e:
        render({"operator": {"logFormat": "xml"}})
    assert "/operator/logFormat" in str(e.value), str(e.value)


def test_crd_is_the_generated_one():
    # One source: charts/corefit-operator/crds/clusterapp.yaml is a symlink
    # to crds/clusterapp.yaml (written by the operator's crdgen binary).
    link = CHART / "crds" / "clusterapp.yaml"
    assert link.is_symlink(), f"{link} must be a symlink to {CRD}, not a copy"
    assert os.readlink(link) == "../../../crds/clusterapp.yaml"
    assert link.resolve() == CRD.resolve()
    assert sorted(os.listdir(CHART / "crds")) == ["clusterapp.yaml"]
    with load_chart() as chart:
        crds = chart.crds
    assert [c["filename"] for c in crds] == ["corefit-operator/crds/clusterapp.yaml"]
    assert crds[0]["data"] == CRD.read_text(), "the engine loaded something else than crds/clusterapp.yaml"
    crd = yaml.safe_load(crds[0]["data"])
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "clusterapps.corefit.dev"


def _leaf_keys(d: dict, prefix: str = "") -> set[str]:
    keys = set()
    for k, v in d.items():
        full = f"{prefix}{k}"
        # Maps of user data and probe/security blocks are documented as one key.
        if isinstance(v, dict) and v and full not in DOCUMENTED_AS_ONE:
            keys |= _leaf_keys(v, full + ".")
        else:
            keys.add(full)
    return keys


DOCUMENTED_AS_ONE = {
    "livenessProbe",
    "readinessProbe",
    "resources",
    "podSecurityContext",
    "securityContext",
}


def test_readme_values_table_lists_every_value():
    with load_chart() as chart:
        values = chart.values
    readme = (CHART / "README.md").read_text()
    assert "\n## Values\n" in readme, "README.md has no '## Values' section"
    table = readme.split("\n## Values\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \|", table, flags=re.M)
    assert rows, "README.md has no values table"
    documented = set(rows)
    want = _leaf_keys(values)
    assert want - documented == set(), f"values missing from README.md's table: {sorted(want - documented)}"
    assert documented - want == set(), f"README.md documents values that do not exist: {sorted(documented - want)}"
    assert "kubectl apply --server-side -f" in readme, "README.md must say how to upgrade the CRD"


def test_packaged_chart_carries_the_crd_content(tmp_path):
    # `helm package` follows the symlink: the archive holds the file itself.
    archive = helm.package(CHART, destination=tmp_path)
    helm.expand(tmp_path / "x", archive)
    packed = tmp_path / "x" / "corefit-operator" / "crds" / "clusterapp.yaml"
    assert not packed.is_symlink()
    assert packed.read_text() == CRD.read_text()
    assert (tmp_path / "x" / "corefit-operator" / "values.schema.json").exists()
