"""Fixtures: the chart through the real Helm engine, and the test control
plane that tests/helm/run.sh starts (COREFIT_TEST_KUBECONFIG)."""

from __future__ import annotations

import os

import pytest

from kube import Kube


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    path = os.environ.get("COREFIT_TEST_KUBECONFIG", "")
    if not path or not os.path.exists(path):
        pytest.fail(
            "COREFIT_TEST_KUBECONFIG is not set to a kubeconfig: run these tests "
            "through tests/helm/run.sh, which starts a control plane"
        )
    return path


@pytest.fixture(scope="session")
def kube(kubeconfig: str) -> Kube:
    k = Kube.from_kubeconfig(kubeconfig)
    version = k.get("/version")  # raises with the apiserver's answer when unreachable
    assert version.get("gitVersion", "").startswith("v1."), version
    return k
