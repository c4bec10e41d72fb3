"""A small synchronous Kubernetes client for unstructured objects (plain dicts).

The official client's typed models would round-trip every child through generated classes;
the reconciler works on dicts (what the builders produce and what the API returns), so this
wraps `ApiClient` for the few verbs it needs, including server-side apply.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from kubernetes import client, config

from thumbnail_operator import constants as c

Obj = dict[str, Any]


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str

    @property
    def prefix(self) -> str:
        return "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        path = f"{self.prefix}/namespaces/{quote(namespace)}/{self.plural}"
        if name is not None:
            path += f"/{quote(name)}"
        if subresource is not None:
            path += f"/{subresource}"
        return path


CONFIG_MAP = Kind("v1", "ConfigMap", "configmaps")
SECRET = Kind("v1", "Secret", "secrets")
SERVICE = Kind("v1", "Service", "services")
EVENT = Kind("v1", "Event", "events")
PVC = Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims")
POD = Kind("v1", "Pod", "pods")  # read only: why a component is not ready
DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments")
STATEFUL_SET = Kind("apps/v1", "StatefulSet", "statefulsets")
JOB = Kind("batch/v1", "Job", "jobs")
PDB = Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets")
NETWORK_POLICY = Kind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies")
POD_MONITOR = Kind("monitoring.coreos.com/v1", "PodMonitor", "podmonitors")
PROMETHEUS_RULE = Kind("monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules")
THUMBNAIL_SERVICE = Kind(c.API_VERSION, c.KIND, c.PLURAL)  # the hub and storage version
THUMBNAIL_SERVICE_V1ALPHA1 = Kind(c.DEPRECATED_API_VERSION, c.KIND, c.PLURAL)  # deprecated
THUMBNAIL_BACKUP = Kind(c.API_VERSION, c.BACKUP_KIND, c.BACKUP_PLURAL)

CHILD_KINDS: tuple[Kind, ...] = (
    CONFIG_MAP, SECRET, SERVICE, DEPLOYMENT, STATEFUL_SET, JOB, PDB, NETWORK_POLICY,
)
# Children of kinds a cluster may not serve (the Prometheus Operator's CRDs): observed,
# watched and applied only where discovery finds them (`KubeClient.served`).
OPTIONAL_CHILD_KINDS: tuple[Kind, ...] = (POD_MONITOR, PROMETHEUS_RULE)
_BY_KIND = {(k.api_version, k.kind): k for k in (
    *CHILD_KINDS, *OPTIONAL_CHILD_KINDS, EVENT, PVC, POD, THUMBNAIL_SERVICE,
    THUMBNAIL_SERVICE_V1ALPHA1, THUMBNAIL_BACKUP)}


def kind_of(obj: Obj) -> Kind:
    return _BY_KIND[(obj["apiVersion"], obj["kind"])]


class ApiError(Exception):
    """An API request failed; `status` is the HTTP code, `message` the server's reason."""

    def __init__(self, status: int, message: str, body: Obj | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.body = body or {}

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


def load_configuration(kubeconfig: str | None = None) -> client.Configuration:
    """In-cluster credentials when running in a pod, else the kubeconfig file."""
    configuration = client.Configuration()
    if kubeconfig is None:
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return configuration
        except config.ConfigException:
            pass
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    return configuration


class KubeClient:
    def __init__(
        self, configuration: client.Configuration, timeout: float = 30.0,
        pool_size: int | None = None,
    ) -> None:
        """`pool_size`: connections kept for reuse, at least one per thread using this
        client (the library's default is 5 per CPU; beyond it urllib3 discards connections
        and every further request pays a new TLS handshake)."""
        self.configuration = configuration
        if pool_size is not None:
            configuration = copy.deepcopy(configuration)
            configuration.connection_pool_maxsize = pool_size
        self._api = client.ApiClient(configuration)
        self._timeout = timeout

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        return self._call(method, path, body=body, query=query, content_type=content_type)[1]

    def _call(self, method: str, path: str, **options: Any) -> tuple[int, Obj]:
        """(HTTP status, decoded JSON body); ApiError for anything but 2xx."""
        status, raw = self._raw(method, path, **options)
        return status, (json.loads(raw) if raw else {})

    def _raw(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, bytes]:
        """(HTTP status, raw body); ApiError for anything but 2xx."""
        if query:
            path = f"{path}?{urlencode(query)}"
        headers = {"Accept": "application/json, */*", "Content-Type": content_type}
        _, url, headers, body, _ = self._api.param_serialize(
            method, path, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        try:
            response = self._api.call_api(
                method, url, header_params=headers, body=body, _request_timeout=self._timeout
            )
            raw = response.read()  # type: ignore[no-untyped-call]
        except client.ApiException as err:
            raise _api_error(err.status or 0, err.body) from None
        if not 200 <= response.status <= 299:
            raise _api_error(response.status, raw)
        return response.status, bytes(raw or b"")

    def served(self, kinds: tuple[Kind, ...]) -> tuple[Kind, ...]:
        """Those of `kinds` the API server serves (API discovery of their group versions)."""
        found: list[Kind] = []
        for version in dict.fromkeys(kind.api_version for kind in kinds):
            prefix = "/api" if "/" not in version else "/apis"
            try:
                resources = self.request("GET", f"{prefix}/{version}").get("resources", [])
            except ApiError as err:
                if err.not_found:
                    continue
                raise
            plurals = {resource["name"] for resource in resources}
            found += [k for k in kinds if k.api_version == version and k.plural in plurals]
        return tuple(found)

    # Generic verbs -----------------------------------------------------------------------

    def get(self, kind: Kind, namespace: str, name: str) -> Obj | None:
        try:
            return self.request("GET", kind.path(namespace, name))
        except ApiError as err:
            if err.not_found:
                return None
            raise

    def list(
        self, kind: Kind, namespace: str, labels: dict[str, str],
        fields: dict[str, str] | None = None,
    ) -> list[Obj]:
        query = {"labelSelector": ",".join(f"{k}={v}" for k, v in sorted(labels.items()))}
        if fields:
            query["fieldSelector"] = ",".join(f"{k}={v}" for k, v in sorted(fields.items()))
        result = self.request("GET", kind.path(namespace), query=query)
        items: list[Obj] = result.get("items", [])
        for item in items:  # lists omit these per item
            item.setdefault("apiVersion", kind.api_version)
            item.setdefault("kind", kind.kind)
        return items

    def apply(self, obj: Obj) -> tuple[Obj, bool]:
        """Server-side apply under the operator's field manager, taking over conflicts; and
        whether it created the object (201): one request instead of a GET to find out first.

        Strict field validation: a field the API server does not know (e.g. a misspelt one in
        a spec's `affinity`, which the CRD keeps as given) fails the apply with its name,
        instead of being dropped and then seen as drift on every pass."""
        meta = obj["metadata"]
        status, applied = self._call(
            "PATCH",
            kind_of(obj).path(meta["namespace"], meta["name"]),
            body=obj,
            query={"fieldManager": c.FIELD_MANAGER, "force": "true",
                   "fieldValidation": "Strict"},
            content_type="application/apply-patch+yaml",
        )
        return applied, status == 201

    def json_patch(self, obj: Obj, operations: Sequence[Obj]) -> Obj:
        """RFC 6902 patch: removes what server-side apply cannot (fields of other managers)."""
        meta = obj["metadata"]
        return self.request(
            "PATCH",
            kind_of(obj).path(meta["namespace"], meta["name"]),
            body=list(operations),
            query={"fieldManager": c.FIELD_MANAGER},
            content_type="application/json-patch+json",
        )

    def log_tail(self, namespace: str, pod: str, container: str, lines: int = 20) -> str:
        """The last lines a container wrote (its previous run's when it is restarting); empty
        when there is no log. The container is named: pods with init containers need it."""
        query = {"container": container, "tailLines": str(lines), "limitBytes": "8192"}
        # A container waiting to restart (crash loop) has no current log: read the last run's.
        for previous in ("false", "true"):
            try:
                _, raw = self._raw(
                    "GET", POD.path(namespace, pod, "log"), query={**query, "previous": previous}
                )
            except ApiError:
                continue
            if raw.strip():
                return raw.decode(errors="replace")
        return ""

    def create(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        return self.request(
            "POST",
            kind_of(obj).path(meta["namespace"]),
            body=obj,
            query={"fieldManager": c.FIELD_MANAGER},
        )

    def delete(self, kind: Kind, namespace: str, name: str) -> None:
        try:
            self.request(
                "DELETE",
                kind.path(namespace, name),
                body={"propagationPolicy": "Background"},
            )
        except ApiError as err:
            if not err.not_found:
                raise

    def patch_status(self, kind: Kind, namespace: str, name: str, status: Obj) -> Obj:
        return self.request(
            "PATCH",
            kind.path(namespace, name, "status"),
            body={"status": status},
            content_type="application/merge-patch+json",
        )


def _api_error(status: int, raw: bytes | str | None) -> ApiError:
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else (raw or "")
    try:
        body = json.loads(text)
    except ValueError:
        return ApiError(status, text[:500] or "no response body")
    message = body.get("message", text[:500]) if isinstance(body, dict) else text[:500]
    return ApiError(status, message, body if isinstance(body, dict) else None)
