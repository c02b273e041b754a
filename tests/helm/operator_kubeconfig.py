"""Gives the operator the chart's identity on a running control plane, for
end-to-end tests that want to run the operator exactly as installed:

    tests/helm/operator-kubeconfig.sh ADMIN_KUBECONFIG OUT_KUBECONFIG [WATCH_NAMESPACE]

Renders the chart (default values, or operator.watchNamespace) with the real
Helm engine, server-side applies only its Namespace, ServiceAccount and RBAC
objects with the admin kubeconfig, then writes OUT_KUBECONFIG holding a
TokenRequest token (1 hour) for that ServiceAccount and nothing else.
"""

from __future__ import annotations

import os
import sys

import yaml

from chartlib import NAMESPACE, RELEASE, objects, render
from kube import Kube, path_of

IDENTITY_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    admin_path, out_path = argv[1], argv[2]
    values = {"operator": {"watchNamespace": argv[3]}} if len(argv) == 4 else {}
    admin = Kube.from_kubeconfig(admin_path)
    namespaces = {NAMESPACE, *(values.get("operator", {}).values())}
    for ns in sorted(namespaces):
        admin.apply(f"/api/v1/namespaces/{ns}", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    sa_name = None
    for obj in objects(render(values)):
        if obj["kind"] not in IDENTITY_KINDS:
            continue
        admin.apply(path_of(obj, NAMESPACE), obj)
        if obj["kind"] == "ServiceAccount":
            sa_name = obj["metadata"]["name"]
    assert sa_name == RELEASE, f"the chart rendered no ServiceAccount {RELEASE}"
    token = admin.service_account_token(NAMESPACE, sa_name, 3600)
    cfg = {
        "apiVersion": "v1", "kind": "Config", "current-context": "corefit-operator",
        "clusters": [{"name": "c", "cluster": {"server": admin.server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": sa_name, "user": {"token": token}}],
        "contexts": [{"name": "corefit-operator",
                      "context": {"cluster": "c", "user": sa_name, "namespace": NAMESPACE}}],
    }
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(cfg, f)
    print(f"system:serviceaccount:{NAMESPACE}:{sa_name} -> {out_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
