"""deploy/ is the chart rendered with default values: same bytes as the
generator makes now, and a valid kustomization."""

from __future__ import annotations

import difflib
import shutil
import subprocess

import yaml

from chartlib import CRD, DEPLOY, actual_deploy, expected_deploy

REGEN = "deploy/regenerate.sh"


def test_deploy_matches_the_chart():
    want = expected_deploy()
    have = actual_deploy()
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    assert not missing, f"deploy/ lacks {missing}: run {REGEN}"
    assert not extra, f"deploy/ has files the chart does not make: {extra}: run {REGEN}"
    for rel in sorted(want):
        if have[rel] != want[rel]:
            diff = "".join(
                difflib.unified_diff(
                    have[rel].splitlines(True), want[rel].splitlines(True),
                    f"deploy/{rel} (on disk)", f"deploy/{rel} (from the chart)",
                )
            )
            raise AssertionError(f"deploy/{rel} differs from the chart: run {REGEN}\n{diff}")


def test_deploy_crd_is_the_generated_crd():
    assert (DEPLOY / "crds" / "clusterapp.yaml").read_text() == CRD.read_text(), (
        f"deploy/crds/clusterapp.yaml differs from crds/clusterapp.yaml: run {REGEN}"
    )


def test_kustomization_lists_every_manifest():
    kust = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    files = set(actual_deploy()) - {"kustomization.yaml"}
    assert set(kust["resources"]) == files


def test_kustomize_builds_it():
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed (Debian: apt-get install kubernetes-client)"
    out = subprocess.run([kubectl, "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(out.stdout) if d)
    assert kinds == sorted(
        [
            "Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole",
            "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service",
        ]
    ), kinds
