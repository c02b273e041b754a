"""The operator runs non-root with a read-only root filesystem, and no
value can undo it: checked on the chart as the real Helm engine renders
it (defaults and other value sets), on deploy/ (what `kubectl apply -k`
installs), on the values schema (weakening values are refused, naming the
key), and on every Dockerfile (a numeric, non-root USER in the final
stage, so the kubelet can verify runAsNonRoot)."""

from __future__ import annotations

import re

import helm_python as helm
import pytest
import yaml

from chartlib import DEPLOY, REPO, assert_schema_refuses, load_chart, objects, render
from test_dockerfiles import DOCKERFILES, final_stage, instructions

# Value sets that change what is rendered; hardening must hold in each.
VALUE_SETS = {
    "defaults": {},
    "one namespace, no leader election": {
        "operator": {"watchNamespace": "apps"},
        "leaderElection": {"enabled": False},
        "replicaCount": 1,
    },
    "extra env, annotations, resources": {
        "operator": {"extraEnv": [{"name": "RUST_BACKTRACE", "value": "1"}]},
        "podAnnotations": {"a": "b"},
        "resources": {"limits": {"memory": "128Mi"}},
    },
    "own user and group": {
        "podSecurityContext": {"runAsUser": 1234, "runAsGroup": 1234, "fsGroup": 1234},
    },
}


def pod_specs(objs: list[dict]) -> list[tuple[str, dict]]:
    out = []
    for o in objs:
        spec = o.get("spec", {})
        if o["kind"] == "Pod":
            out.append((o["metadata"]["name"], spec))
        elif "template" in spec:
            out.append((f"{o['kind']}/{o['metadata']['name']}", spec["template"]["spec"]))
    return out


def assert_hardened(where: str, pod: dict) -> int:
    """Every container of `pod`: effective non-root uid and gid, read-only
    root filesystem, no privilege escalation, every capability dropped,
    nothing privileged, no host namespaces. Returns the containers seen."""
    psc = pod.get("securityContext", {})
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(host), f"{where}: {host}"
    assert not any("hostPath" in v for v in pod.get("volumes", [])), f"{where}: hostPath volume"
    containers = pod.get("containers", []) + pod.get("initContainers", [])
    assert containers, where
    for c in containers:
        at = f"{where} container {c['name']}"
        sc = c.get("securityContext", {})

        def eff(key):
            return sc.get(key, psc.get(key))

        assert eff("runAsNonRoot") is True, f"{at}: runAsNonRoot"
        uid = eff("runAsUser")
        assert isinstance(uid, int) and uid > 0, f"{at}: runAsUser {uid!r} (numeric, non-zero)"
        gid = eff("runAsGroup")
        assert gid is None or (isinstance(gid, int) and gid > 0), f"{at}: runAsGroup {gid!r}"
        assert sc.get("readOnlyRootFilesystem") is True, f"{at}: readOnlyRootFilesystem"
        assert sc.get("allowPrivilegeEscalation") is False, f"{at}: allowPrivilegeEscalation"
        assert sc.get("privileged") in (None, False), f"{at}: privileged"
        caps = sc.get("capabilities", {})
        assert "ALL" in caps.get("drop", []), f"{at}: capabilities.drop {caps}"
        assert not caps.get("add"), f"{at}: capabilities.add {caps}"
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        assert seccomp in ("RuntimeDefault", "Localhost"), f"{at}: seccompProfile {seccomp}"
    return len(containers)


@pytest.mark.parametrize("values", list(VALUE_SETS.values()), ids=list(VALUE_SETS))
def test_rendered_chart_runs_non_root_read_only(values):
    objs = objects(render(values))
    pods = pod_specs(objs)
    assert [w for w, _ in pods] == ["Deployment/corefit-operator"], pods
    assert sum(assert_hardened(w, p) for w, p in pods) == 1


def test_deploy_dir_runs_non_root_read_only():
    objs = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        objs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    pods = pod_specs(objs)
    assert pods, "deploy/ holds no workload"
    for where, pod in pods:
        assert_hardened(f"deploy/ {where}", pod)


WEAKENING = [
    ({"securityContext": {"readOnlyRootFilesystem": False}}, "/securityContext/readOnlyRootFilesystem"),
    ({"securityContext": {"runAsUser": 0}}, "/securityContext/runAsUser"),
    ({"securityContext": {"runAsGroup": 0}}, "/securityContext/runAsGroup"),
    ({"securityContext": {"privileged": True}}, "/securityContext/privileged"),
    ({"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}, "/securityContext/capabilities/add"),
    ({"securityContext": {"capabilities": {"drop": ["NET_RAW"]}}}, "/securityContext/capabilities/drop"),
    ({"podSecurityContext": {"runAsUser": 0}}, "/podSecurityContext/runAsUser"),
    ({"podSecurityContext": {"runAsGroup": 0}}, "/podSecurityContext/runAsGroup"),
]


@pytest.mark.parametrize("values,where", WEAKENING, ids=[w for _, w in WEAKENING])
def test_values_that_weaken_the_hardening_are_refused(values, where):
    assert_schema_refuses(values, where)
    # And `helm template`/`install` refuse to render them.
    with pytest.raises(helm.HelmError):
        render(values)


@pytest.mark.parametrize("name", list(DOCKERFILES))
def test_final_image_user_is_numeric_and_non_root(name):
    users = [a for w, a in final_stage(instructions(DOCKERFILES[name])) if w == "USER"]
    assert users, f"{name}: no USER in the final stage"
    m = re.fullmatch(r"(\d+)(?::(\d+))?", users[-1])
    assert m, f"{name}: USER {users[-1]!r} is not numeric (the kubelet cannot check runAsNonRoot by name)"
    uid, gid = int(m.group(1)), m.group(2)
    assert uid != 0, f"{name}: USER {users[-1]}"
    assert gid is not None and int(gid) != 0, f"{name}: USER {users[-1]} sets no non-root group"


def test_every_dockerfile_is_checked():
    found = sorted(
        p.relative_to(REPO).as_posix()
        for p in REPO.rglob("*Dockerfile*")
        if not any(part in ("target", ".git", "node_modules") for part in p.parts)
    )
    checked = sorted(p.relative_to(REPO).as_posix() for p in DOCKERFILES.values())
    assert found == checked, f"Dockerfiles not covered by the checks: {set(found) - set(checked)}"


def test_operator_image_user_is_the_charts():
    (user,) = [a for w, a in final_stage(instructions(DOCKERFILES["operator"])) if w == "USER"]
    with load_chart() as chart:
        psc = chart.values["podSecurityContext"]
    uid, gid = (int(x) for x in user.split(":"))
    assert (uid, gid) == (psc["runAsUser"], psc["runAsGroup"])
