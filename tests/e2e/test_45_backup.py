"""Backups and restores on real pods (issue 14).

A ThumbnailService `shop` in a namespace of its own, backed up to another S3 endpoint (the
sample's MinIO, as a user would use a separate object store): an on-demand ThumbnailBackup
and scheduled ones (every minute, keeping one) complete and are listed. Then `shop` is
deleted with its volumes (retentionPolicy Delete) and its namespace, and a new ThumbnailService
in a new namespace starts from the backup: every job reads back with its status and every
thumbnail downloads byte-identical. Asking that restored service for another backup is
refused with a message that says why.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.conftest import (
    IMAGE,
    NAMESPACE,
    E2ECluster,
    Service,
    admit_to_data_store,
    submit_and_wait,
)
from thumbnail_substrate.deploy import ready_condition, with_images
from thumbnail_substrate.testing import wait_for

pytestmark = pytest.mark.e2e

SOURCE_NS, TARGET_NS = "backup-source", "backup-target"
JOBS = 4
SMALL = {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}
Obj = dict[str, Any]


def _vault(cluster: E2ECluster, service: Service, namespace: str) -> Obj:
    """The sample's MinIO as the backup destination, with its keys in a Secret of `namespace`."""
    data = cluster.get("-n", NAMESPACE, "secret", f"{service.name}-credentials")["data"]
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "vault-keys", "namespace": namespace},
        "data": {"accessKey": data["THUMBNAIL_S3_ACCESS_KEY"],
                 "secretKey": data["THUMBNAIL_S3_SECRET_KEY"]}}))
    # The sample's policies admit only its own pods to its MinIO: the shops' namespaces too.
    admit_to_data_store(cluster, service, "vault-clients", "minio", 9000, {
        "namespaceSelector": {"matchExpressions": [{
            "key": "kubernetes.io/metadata.name", "operator": "In",
            "values": [SOURCE_NS, TARGET_NS]}]}})
    return {"endpoint": f"{service.name}-minio.{NAMESPACE}.svc.cluster.local:9000",
            "secure": False, "secretRef": {"name": "vault-keys"}}


def _shop(cluster: E2ECluster, namespace: str, extra: Obj) -> Obj:
    body = with_images({"apiVersion": "thumbnails.platform.dev/v1", "kind": "ThumbnailService",
                        "metadata": {"name": "shop", "namespace": namespace}, "spec": {}},
                       cluster.images)
    spec = body["spec"]
    spec["server"] = {**spec.get("server", {}), "replicas": 1, "resources": SMALL,
                      "service": {"nodePort": {"enabled": True, "port": 30002}}}
    spec["workers"] = {**spec.get("workers", {}), "replicas": 1, "resources": SMALL}
    for store in ("postgresql", "redis", "objectStorage"):
        managed = spec.setdefault(store, {}).setdefault("managed", {})
        managed["resources"] = SMALL
        if store != "redis":
            managed["storage"] = {"size": "1Gi"}
    spec["persistence"] = {"retentionPolicy": "Delete"}
    spec.update(extra)
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(body))
    return body


def _namespace(cluster: E2ECluster, name: str) -> None:
    cluster.kubectl("create", "namespace", name)


def _ready(cluster: E2ECluster, namespace: str, timeout: float = 420) -> None:
    wait_for(lambda: ready_condition(cluster.kubeconfig, namespace, "shop"), timeout=timeout,
             what=f"{namespace}/shop READY True", interval=2, ignore=(AssertionError,))


def _key(cluster: E2ECluster, namespace: str) -> str:
    encoded = cluster.get("-n", namespace, "secret", "shop-credentials")["data"]
    return base64.b64decode(encoded["THUMBNAIL_API_KEYS"]).decode().split(",")[0]


def _backup(cluster: E2ECluster, namespace: str, name: str) -> Obj:
    found: Obj = cluster.get("-n", namespace, "thumbnailbackup", name)
    return found


def _finished(cluster: E2ECluster, namespace: str, name: str, timeout: float = 300) -> Obj:
    def done() -> Obj | None:
        status = _backup(cluster, namespace, name).get("status") or {}
        return status if status.get("phase") in ("Completed", "Failed") else None

    status: Obj = wait_for(done, timeout=timeout, what=f"ThumbnailBackup {name} finished",
                           interval=2, ignore=(AssertionError,))
    return status


def _jobs(http: httpx.Client) -> dict[str, tuple[Obj, dict[str, str]]]:
    """Every job with the sha256 of each of its thumbnails."""
    listed = http.get("/v1/jobs", params={"limit": 100})
    assert listed.status_code == 200, listed.text
    found = {}
    for item in listed.json()["items"]:
        job = http.get(f"/v1/jobs/{item['id']}").json()
        digests = {}
        for thumbnail in job.get("thumbnails") or []:
            got = http.get(f"/v1/jobs/{job['id']}/thumbnails/{thumbnail['name']}")
            assert got.status_code == 200, got.text
            digests[thumbnail["name"]] = hashlib.sha256(got.content).hexdigest()
        found[job["id"]] = (job, digests)
    return found


def _comparable(job: Obj) -> Obj:
    # Download URLs may carry the serving host; everything else must be identical.
    return {k: v for k, v in job.items() if k not in ("links",)}


# Minutes of real time: two scheduled backups a minute apart, a deletion, a restore.
@pytest.mark.timeout(1200)
def test_backup_delete_everything_and_restore_into_a_new_namespace(
    e2e_cluster: E2ECluster, service: Service
) -> None:
    cluster = e2e_cluster
    for name in (SOURCE_NS, TARGET_NS):
        _namespace(cluster, name)
    try:
        vault = _vault(cluster, service, SOURCE_NS)
        _shop(cluster, SOURCE_NS, {"backup": {"schedule": "* * * * *",
                                              "retention": {"count": 1},
                                              "destination": {"s3": vault}}})
        _ready(cluster, SOURCE_NS)
        with httpx.Client(base_url=cluster.spare_url, timeout=30,
                          headers={"X-API-Key": _key(cluster, SOURCE_NS)}) as http:
            for _ in range(JOBS):
                job = wait_for(lambda: submit_and_wait(http, IMAGE.read_bytes()), timeout=240,
                               what="a job on shop", ignore=(httpx.HTTPError, AssertionError))
                assert job["status"] == "succeeded", job
            before = _jobs(http)
        assert len(before) == JOBS

        # On demand.
        started = time.monotonic()
        cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump({
            "apiVersion": "thumbnails.platform.dev/v1", "kind": "ThumbnailBackup",
            "metadata": {"name": "shop-manual", "namespace": SOURCE_NS},
            "spec": {"service": {"name": "shop"}}}))
        status = _finished(cluster, SOURCE_NS, "shop-manual")
        print(f"on-demand backup of {JOBS} jobs: {status.get('phase')} in "
              f"{time.monotonic() - started:.1f}s, {status.get('size')}, "
              f"{status.get('objects')} objects; {status.get('message')}")
        assert status["phase"] == "Completed", status
        assert status["jobs"] == JOBS and status["skipped"] == 0
        assert status["objects"] == JOBS * (1 + len(next(iter(before.values()))[1]))
        assert status["location"].startswith(f"s3://backups/{SOURCE_NS}/shop/shop-manual/")
        listed = cluster.kubectl("-n", SOURCE_NS, "get", "thumbnailbackups")
        print(listed)
        assert "shop-manual" in listed and "Completed" in listed
        # The service records its newest completed backup (the LAST BACKUP column).
        last = wait_for(lambda: cluster.get("-n", SOURCE_NS, "thumbnailservice", "shop").get(
            "status", {}).get("lastBackup"), timeout=30, what="status.lastBackup", interval=1)
        assert last["completedAt"] >= status["finishedAt"], (last, status)
        print(cluster.kubectl("-n", SOURCE_NS, "get", "thumbnailservice", "shop"))

        # Scheduled: every minute, one kept - the second one's retention prunes the first.
        def scheduled(count: int) -> list[Obj] | None:
            items = cluster.get("-n", SOURCE_NS, "thumbnailbackups", "-l",
                                "thumbnails.platform.dev/scheduled=true")["items"]
            done = [b for b in items if (b.get("status") or {}).get("phase") == "Completed"]
            return done if len(done) >= count else None

        first = wait_for(lambda: scheduled(1), timeout=200, what="a scheduled backup",
                         interval=3)[0]["metadata"]["name"]

        def pruned() -> list[str] | None:
            names = [b["metadata"]["name"] for b in scheduled(1) or []]
            return names if names and first not in names else None

        kept = wait_for(pruned, timeout=200, what=f"retention (count 1) to prune {first}",
                        interval=3)[0]
        assert _backup(cluster, SOURCE_NS, "shop-manual")["status"]["phase"] == "Completed"

        # Lose everything: the service, its volumes (Delete), its namespace.
        cluster.kubectl("-n", SOURCE_NS, "delete", "thumbnailservice", "shop", "--wait=true",
                        timeout=300)
        cluster.kubectl("delete", "namespace", SOURCE_NS, "--wait=true", timeout=300)

        # Restore into a new namespace, from the backup's id and destination.
        started = time.monotonic()
        vault = _vault(cluster, service, TARGET_NS)
        source = {"backupId": "shop-manual",
                  "destination": {"prefix": f"{SOURCE_NS}/shop", "s3": vault}}
        _shop(cluster, TARGET_NS, {"bootstrap": {"fromBackup": source}})
        _ready(cluster, TARGET_NS)
        print(f"restored and ready in {time.monotonic() - started:.1f}s")
        with httpx.Client(base_url=cluster.spare_url, timeout=30,
                          headers={"X-API-Key": _key(cluster, TARGET_NS)}) as http:
            after = wait_for(lambda: _jobs(http), timeout=60, what="the restored jobs",
                             ignore=(httpx.HTTPError, AssertionError))
        assert set(after) == set(before)
        for job_id, (job, digests) in before.items():
            assert _comparable(after[job_id][0]) == _comparable(job), job_id
            assert after[job_id][1] == digests, job_id  # every thumbnail byte-identical

        # Another backup over data that exists is refused, with the reason in the status.
        patch = {"spec": {"bootstrap": {"fromBackup": {**source, "backupId": kept}}}}
        cluster.kubectl("-n", TARGET_NS, "patch", "thumbnailservice", "shop", "--type=merge",
                        "-p", json.dumps(patch))

        def refused() -> str | None:
            status = cluster.get("-n", TARGET_NS, "thumbnailservice", "shop").get("status", {})
            message = str(status.get("components", {}).get("server", {}).get("message", ""))
            return message if "restore" in message else None

        message = wait_for(refused, timeout=180, what="the server's restore refused",
                           interval=2)
        print(f"refused: {message}")
        assert "already holds" in message, message
    finally:
        for name in (SOURCE_NS, TARGET_NS):
            cluster.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=true",
                            timeout=300)
        cluster.kubectl("-n", NAMESPACE, "delete", "networkpolicy", "vault-clients",
                        "--ignore-not-found")
