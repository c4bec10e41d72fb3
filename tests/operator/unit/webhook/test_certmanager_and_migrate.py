"""Certificate Secret + caBundle management and the stored-version migrator, against a fake
API (the same flows run on the real control plane in tests/upgrade)."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from thumbnail_operator.kube import SECRET, ApiError, Kind
from thumbnail_operator.settings import OperatorSettings
from thumbnail_operator.webhook import certs
from thumbnail_operator.webhook.certmanager import (
    CRD_NAME,
    CRD_PATH,
    CertificateManager,
    ca_bundle_of,
)
from thumbnail_operator.webhook.migrate import StorageVersionMigrator, storage_version_hash

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
Obj = dict[str, Any]


class FakeApi:
    """Just enough of the API server for these flows, with a log of writes."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], Obj] = {}
        self.crd: Obj | None = None
        self.objects: dict[tuple[str, str], Obj] = {}  # ThumbnailServices
        self.stored: dict[tuple[str, str], str] = {}  # version each object is stored in
        self.writes: list[str] = []
        self.rv = 100
        self.fail_restore: set[str] = set()
        self.vanish_on_restore: set[str] = set()
        self.lose_create_race = False
        self.storage_in_effect = "v1"

    def _bump(self) -> str:
        self.rv += 1
        return str(self.rv)

    # -- KubeClient surface ----------------------------------------------------------------

    def get(self, kind: Kind, namespace: str, name: str) -> Obj | None:
        assert kind == SECRET
        found = self.secrets.get((namespace, name))
        return copy.deepcopy(found) if found else None

    def create(self, obj: Obj) -> Obj:
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        if self.lose_create_race:  # another replica created it a moment ago
            self.lose_create_race = False
            rival = copy.deepcopy(obj)
            bundle = certs.issue(["127.0.0.1"], NOW)
            rival["data"] = {k: base64.b64encode(v.encode()).decode()
                             for k, v in bundle.secret_data().items()}
            rival["metadata"]["resourceVersion"] = self._bump()
            self.secrets[key] = rival
            raise ApiError(409, "already exists")
        if key in self.secrets:
            raise ApiError(409, "already exists")
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = self._bump()
        self.secrets[key] = obj
        self.writes.append("create secret")
        return obj

    def request(self, method: str, path: str, *, body: Any = None,
                query: dict[str, str] | None = None, content_type: str = "") -> Obj:
        parsed = urlparse(path)
        query = {**{k: v[0] for k, v in parse_qs(parsed.query).items()}, **(query or {})}
        parts = parsed.path.strip("/").split("/")
        if parsed.path.startswith(CRD_PATH):
            return self._crd(method, parts, body)
        if parts[:2] == ["api", "v1"] and "secrets" in parts:
            return self._patch_secret(parts[3], parts[5], body)
        if parts[0] == "apis" and parts[1] == "thumbnails.platform.dev" and len(parts) == 3:
            return self._discovery(parts[2])
        if parts[0] == "apis" and parts[1] == "thumbnails.platform.dev":
            return self._tns(method, parts, query)
        if parts[-1] == "events":
            self.writes.append("event")
            return {}
        raise AssertionError(f"unexpected {method} {path}")

    def _discovery(self, version: str) -> Obj:
        storage = self.storage_in_effect
        return {"resources": [{"name": "thumbnailservices", "storageVersionHash":
                               storage_version_hash("thumbnails.platform.dev", storage,
                                                    "ThumbnailService")}]}

    def _crd(self, method: str, parts: list[str], body: Any) -> Obj:
        if self.crd is None:
            raise ApiError(404, "not found")
        if method == "GET":
            return copy.deepcopy(self.crd)
        if parts[-1] == "status":
            test, replace = body
            if test["value"] != self.crd["metadata"]["resourceVersion"]:
                raise ApiError(422, "test failed")
            self.crd["status"]["storedVersions"] = replace["value"]
            self.writes.append("trim")
        else:
            hook = self.crd["spec"]["conversion"]["webhook"]
            hook["clientConfig"].update(body["spec"]["conversion"]["webhook"]["clientConfig"])
            self.writes.append("patch caBundle")
        self.crd["metadata"]["resourceVersion"] = self._bump()
        return copy.deepcopy(self.crd)

    def _patch_secret(self, namespace: str, name: str, body: Obj) -> Obj:
        current = self.secrets[(namespace, name)]
        if body["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise ApiError(409, "conflict")
        current["data"] = body["data"]
        current["metadata"]["resourceVersion"] = self._bump()
        self.writes.append("patch secret")
        return copy.deepcopy(current)

    def _tns(self, method: str, parts: list[str], query: dict[str, str]) -> Obj:
        version = parts[2]
        if method == "GET":  # a paginated list across namespaces, or of one namespace
            keys = sorted(k for k in self.objects if parts[3] != "namespaces" or k[0] == parts[4])
            start = int(query.get("continue") or 0)
            limit = int(query["limit"])
            page = keys[start:start + limit]
            token = str(start + limit) if start + limit < len(keys) else ""
            return {"apiVersion": f"thumbnails.platform.dev/{version}",
                    "metadata": {"continue": token},
                    "items": [copy.deepcopy(self.objects[k]) for k in page]}
        assert method == "PATCH" and parts[-1] == "status"
        key = (parts[4], parts[6])
        if parts[6] in self.vanish_on_restore:
            raise ApiError(404, "not found")
        if parts[6] in self.fail_restore:
            raise ApiError(422, "spec.server.replicas: Invalid value")
        if self.stored[key] != version:  # re-encoded in the storage version: a real write
            self.stored[key] = version
            self.objects[key]["metadata"]["resourceVersion"] = self._bump()
            self.writes.append(f"restore {parts[6]}")
        return copy.deepcopy(self.objects[key])


def webhook_crd(stored: list[str]) -> Obj:
    return {
        "metadata": {"name": CRD_NAME, "resourceVersion": "1"},
        "spec": {
            "group": "thumbnails.platform.dev",
            "names": {"plural": "thumbnailservices", "kind": "ThumbnailService"},
            "versions": [{"name": "v1alpha1", "storage": False},
                         {"name": "v1", "storage": True}],
            "conversion": {"strategy": "Webhook", "webhook": {
                "clientConfig": {"url": "https://127.0.0.1:9443/convert"}}},
        },
        "status": {"storedVersions": stored},
    }


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def api() -> FakeApi:
    fake = FakeApi()
    fake.crd = webhook_crd(["v1alpha1", "v1"])
    return fake


def manager(api: FakeApi, clock: Clock, managed: bool = True) -> CertificateManager:
    settings = OperatorSettings(
        webhook_extra_host=["127.0.0.1"], webhook_user_certificate=not managed).certificates()
    return CertificateManager(api, settings, clock)  # type: ignore[arg-type]


def published(api: FakeApi) -> str:
    return base64.b64decode(ca_bundle_of(api.crd or {}) or "").decode()


# -- certificates ----------------------------------------------------------------------------


def test_first_start_creates_the_secret_and_publishes_the_ca(api: FakeApi) -> None:
    clock = Clock()
    bundle = manager(api, clock).reconcile()
    assert api.writes == ["create secret", "patch caBundle"]
    assert published(api) == bundle.ca_pem
    assert api.secrets[("thumbnail-system", "thumbnail-operator-webhook-tls")]["type"] == (
        "kubernetes.io/tls")
    api.writes.clear()
    assert manager(api, clock).reconcile() == bundle  # steady state: no writes at all
    assert api.writes == []


def test_serving_renewal_keeps_the_published_ca(api: FakeApi) -> None:
    clock = Clock()
    first = manager(api, clock).reconcile()
    api.writes.clear()
    clock.now = NOW + certs.SERVING_VALIDITY * 0.8
    second = manager(api, clock).reconcile()
    assert api.writes == ["patch secret"]  # caBundle untouched
    assert second.ca_pem == first.ca_pem and second.cert_pem != first.cert_pem


def test_ca_renewal_publishes_new_and_old_ca(api: FakeApi) -> None:
    clock = Clock()
    first = manager(api, clock).reconcile()
    api.writes.clear()
    clock.now = NOW + certs.CA_VALIDITY * 0.8
    second = manager(api, clock).reconcile()
    assert api.writes == ["patch secret", "patch caBundle"]
    assert published(api) == second.ca_pem
    assert second.ca_pem.endswith(first.ca_pem)


def test_losing_the_creation_race_uses_the_winners_certificate(api: FakeApi) -> None:
    api.lose_create_race = True
    bundle = manager(api, Clock()).reconcile()
    stored = api.secrets[("thumbnail-system", "thumbnail-operator-webhook-tls")]
    assert base64.b64decode(stored["data"]["tls.crt"]).decode() == bundle.cert_pem
    assert published(api) == bundle.ca_pem


def test_user_provided_secret_is_read_never_written(api: FakeApi) -> None:
    clock = Clock()
    with pytest.raises(certs.CertificateError, match="user-provided"):
        manager(api, clock, managed=False).reconcile()
    provided = certs.issue(["127.0.0.1"], NOW)
    api.secrets[("thumbnail-system", "thumbnail-operator-webhook-tls")] = {
        "metadata": {"resourceVersion": "7"},
        "data": {k: base64.b64encode(v.encode()).decode()
                 for k, v in provided.secret_data().items() if k != "ca.key"},
    }
    clock.now = NOW + certs.SERVING_VALIDITY * 0.9  # due, but renewal is the provider's job
    bundle = manager(api, clock, managed=False).reconcile()
    assert bundle.cert_pem == provided.cert_pem
    assert api.writes == ["patch caBundle"]


def test_ca_bundle_is_left_alone_without_webhook_conversion(api: FakeApi) -> None:
    assert api.crd is not None
    api.crd["spec"]["conversion"] = {"strategy": "None"}
    manager(api, Clock()).reconcile()
    assert api.writes == ["create secret"]
    api.crd = None  # CRD not installed yet: nothing to publish, no error
    assert manager(api, Clock()).sync_ca_bundle(certs.issue(["x"], NOW)) is False


# -- migration -------------------------------------------------------------------------------


def add_objects(api: FakeApi, stored: dict[str, str], namespace: str = "ns") -> None:
    for name, version in stored.items():
        key = (namespace, name)
        api.objects[key] = {"apiVersion": "thumbnails.platform.dev/v1",
                            "metadata": {"name": name, "namespace": namespace, "uid": name,
                                         "resourceVersion": "5"}}
        api.stored[key] = version


def test_migration_restores_old_objects_pages_through_and_trims(api: FakeApi) -> None:
    add_objects(api, {"a": "v1alpha1", "b": "v1", "c": "v1alpha1", "d": "v1alpha1", "e": "v1"})
    report = StorageVersionMigrator(api, page_size=2).run()  # type: ignore[arg-type]
    assert (report.listed, report.rewritten, report.unchanged) == (5, 3, 2)
    assert report.trimmed and report.failed == []
    assert api.crd is not None and api.crd["status"]["storedVersions"] == ["v1"]
    assert set(api.stored.values()) == {"v1"}
    assert "re-stored 3, already current 2" in report.summary()
    api.writes.clear()
    again = StorageVersionMigrator(api).run()  # type: ignore[arg-type]
    assert again.skipped and api.writes == []


def test_a_failed_object_blocks_the_trim_and_a_rerun_resumes(api: FakeApi) -> None:
    add_objects(api, {"a": "v1alpha1", "bad": "v1alpha1", "gone": "v1alpha1"})
    api.fail_restore = {"bad"}
    api.vanish_on_restore = {"gone"}
    report = StorageVersionMigrator(api).run()  # type: ignore[arg-type]
    assert report.failed == ["ns/bad: spec.server.replicas: Invalid value"]
    assert (report.rewritten, report.gone, report.trimmed) == (1, 1, False)
    assert api.crd is not None and api.crd["status"]["storedVersions"] == ["v1alpha1", "v1"]

    api.fail_restore = set()
    api.writes.clear()
    rerun = StorageVersionMigrator(api).run()  # type: ignore[arg-type]
    assert rerun.trimmed and rerun.rewritten == 1 and rerun.unchanged == 1
    assert api.writes == ["restore bad", "trim"]  # `a` is not written twice


def test_a_namespaced_migration_restores_its_namespaces_but_never_trims(api: FakeApi) -> None:
    """An operator watching some namespaces cannot see the others: objects there may still be
    stored in v1alpha1, so storedVersions must stay (the namespaced install has no right to
    trim it either)."""
    add_objects(api, {"a": "v1alpha1", "b": "v1"})
    add_objects(api, {"c": "v1alpha1"}, namespace="team")
    add_objects(api, {"elsewhere": "v1alpha1"}, namespace="other")
    report = StorageVersionMigrator(  # type: ignore[arg-type]
        api, page_size=1, namespaces=["ns", "team"]).run()
    assert (report.listed, report.rewritten, report.unchanged) == (3, 2, 1)
    assert report.failed == [] and not report.trimmed
    assert "ns, team" in report.untrimmed and report.untrimmed in report.summary()
    assert api.stored[("other", "elsewhere")] == "v1alpha1"
    assert api.crd is not None and api.crd["status"]["storedVersions"] == ["v1alpha1", "v1"]
    assert "trim" not in api.writes


def test_report_is_json_serialisable(api: FakeApi) -> None:
    add_objects(api, {"a": "v1alpha1"})
    report = StorageVersionMigrator(api).run()  # type: ignore[arg-type]
    assert json.loads(json.dumps(report.__dict__))["rewritten"] == 1


def test_migration_waits_until_the_api_server_stores_the_new_version(api: FakeApi) -> None:
    add_objects(api, {"a": "v1alpha1"})
    api.storage_in_effect = "v1alpha1"  # the CRD says v1, the API server has not switched yet
    report = StorageVersionMigrator(api, settle_seconds=0.6).run()  # type: ignore[arg-type]
    assert report.failed and "storageVersionHash" in report.failed[0]
    assert api.writes == [] and not report.trimmed


def test_storage_version_hash_matches_the_api_server() -> None:
    # Value served by a real kube-apiserver for apps/v1 Deployment (discovery document).
    assert storage_version_hash("apps", "v1", "Deployment") == "8aSe+NMegvE="
