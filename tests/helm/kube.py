"""A small client for the test control plane's REST API (127.0.0.1 only).

Just enough for the checks: requests with a bearer token (the admin's from
the kubeconfig, or a ServiceAccount's from the TokenRequest API), JSON in
and out, and polling with a deadline instead of sleeps.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

import yaml


class ApiError(Exception):
    def __init__(self, status: int, method: str, path: str, body: str):
        self.status = status
        self.body = body
        super().__init__(f"{method} {path} -> HTTP {status}: {body[:300]}")


@dataclass
class Kube:
    server: str
    token: str

    @classmethod
    def from_kubeconfig(cls, path: str) -> "Kube":
        with open(path) as f:
            cfg = yaml.safe_load(f)
        ctx_name = cfg["current-context"]
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
        server = cluster["server"]
        host = urllib.parse.urlparse(server).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise RuntimeError(f"refusing to talk to {server}: the tests use 127.0.0.1 only")
        return cls(server=server, token=user["token"])

    def as_token(self, token: str) -> "Kube":
        return Kube(server=self.server, token=token)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
    ) -> Any:
        url = self.server + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None
        if body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        # The test apiserver has a self-signed certificate on 127.0.0.1.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=15) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raise ApiError(e.code, method, path, e.read().decode(errors="replace")) from None
        return json.loads(raw) if raw else None

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def exists(self, path: str) -> bool:
        try:
            self.get(path)
            return True
        except ApiError as e:
            if e.status == 404:
                return False
            raise

    def status_of(self, method: str, path: str, body: Any = None, **kw: Any) -> int:
        """The HTTP status of a request (2xx, or the error's status)."""
        try:
            self.request(method, path, body, **kw)
            return 200
        except ApiError as e:
            return e.status

    def apply(self, path: str, obj: dict, manager: str = "corefit-helm-test") -> Any:
        """Server-side apply `obj` at `path` (the object's own URL)."""
        return self.request(
            "PATCH",
            path,
            obj,
            content_type="application/apply-patch+yaml",
            query={"fieldManager": manager, "force": "true"},
        )

    def service_account_token(self, namespace: str, name: str, seconds: int = 600) -> str:
        """A real token for the ServiceAccount from the TokenRequest API."""
        tr = self.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": seconds},
            },
        )
        return tr["status"]["token"]

    def can_i(self, verb: str, group: str, resource: str, namespace: str = "", name: str = "",
              subresource: str = "") -> tuple[bool, str]:
        """SelfSubjectAccessReview with this client's own token."""
        attrs = {"verb": verb, "group": group, "resource": resource}
        if namespace:
            attrs["namespace"] = namespace
        if name:
            attrs["name"] = name
        if subresource:
            attrs["subresource"] = subresource
        r = self.request(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attrs},
            },
        )
        st = r.get("status", {})
        return bool(st.get("allowed")), st.get("reason", "") or st.get("evaluationError", "")


def until(what: str, check: Callable[[], Any], deadline_s: float = 30.0, every_s: float = 0.2) -> Any:
    """Polls `check` until it returns something truthy; fails after the deadline."""
    end = time.monotonic() + deadline_s
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        except ApiError as e:
            last = e
        if time.monotonic() >= end:
            raise AssertionError(f"{what}: not true after {deadline_s:.0f}s (last: {last!r})")
        time.sleep(every_s)


# Kind -> (API path prefix, plural, namespaced)
RESOURCES: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("/api/v1", "namespaces", False),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "Service": ("/api/v1", "services", True),
    "Secret": ("/api/v1", "secrets", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "CustomResourceDefinition": ("/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", False),
}


def path_of(obj: dict, default_ns: str = "default") -> str:
    kind = obj["kind"]
    prefix, plural, namespaced = RESOURCES[kind]
    name = obj["metadata"]["name"]
    if namespaced:
        ns = obj["metadata"].get("namespace") or default_ns
        return f"{prefix}/namespaces/{ns}/{plural}/{name}"
    return f"{prefix}/{plural}/{name}"
