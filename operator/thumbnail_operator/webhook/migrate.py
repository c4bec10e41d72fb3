"""Stored-version migration: re-store every ThumbnailService in the storage version, then
trim the CRD's `status.storedVersions` so the old version can later be dropped safely.

Objects are not converted in etcd by themselves: one stored as v1alpha1 stays so until it is
written again. An unchanged write (an empty patch of the status subresource, read and
written in the storage version) makes the API server encode it anew, in the storage version;
an object already stored in that version is not written at all (the API server skips
byte-identical updates), so re-running the migration is cheap: it is idempotent and resumes
simply by starting over. Only after
every object was re-stored without error is `storedVersions` trimmed, through the CRD's
status subresource.

An operator that watches only some namespaces (`-n`, the namespaced install) has no right to
list ThumbnailServices elsewhere: it re-stores the objects of its namespaces and leaves
`storedVersions` alone, since objects it cannot see may still be stored in the old version
(`MigrationReport.untrimmed` says so); a cluster admin finishes the migration with this module.

Run by the operator after it starts serving conversions, and as
`python -m thumbnail_operator.webhook.migrate [--kubeconfig FILE] [-n NAMESPACE ...]`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from thumbnail_operator import constants as c
from thumbnail_operator.controller.events import EventRecorder
from thumbnail_operator.kube import ApiError, KubeClient, load_configuration
from thumbnail_operator.webhook.certmanager import CRD_NAME, CRD_PATH

log = logging.getLogger(__name__)
Obj = dict[str, Any]


@dataclass
class MigrationReport:
    storage_version: str = ""
    stored_before: list[str] = field(default_factory=list)
    listed: int = 0
    rewritten: int = 0
    unchanged: int = 0
    gone: int = 0
    failed: list[str] = field(default_factory=list)
    trimmed: bool = False
    skipped: str = ""
    untrimmed: str = ""  # why storedVersions was left alone although nothing failed

    def summary(self) -> str:
        if self.skipped:
            return f"storage migration skipped: {self.skipped}"
        return (
            f"storage migration to {self.storage_version}: listed {self.listed}, "
            f"re-stored {self.rewritten}, already current {self.unchanged}, gone {self.gone}, "
            f"failed {len(self.failed)}; storedVersions "
            f"{self.stored_before} -> "
            f"{[self.storage_version] if self.trimmed else self.stored_before}"
            + (f" ({self.untrimmed})" if self.untrimmed else "")
        )


def storage_version(crd: Obj) -> str:
    stored = [v["name"] for v in crd["spec"]["versions"] if v.get("storage")]
    if len(stored) != 1:
        raise ValueError(f"CRD {crd['metadata']['name']} has storage versions {stored}")
    return str(stored[0])


def stored_versions(crd: Obj) -> list[str]:
    return list((crd.get("status") or {}).get("storedVersions") or [])


def storage_version_hash(group: str, version: str, kind: str) -> str:
    """What API discovery reports as `storageVersionHash` (as the API server computes it)."""
    digest = hashlib.sha256(f"{group}/{version}/{kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def is_migrated(crd: Obj) -> bool:
    return stored_versions(crd) == [storage_version(crd)]


class StorageVersionMigrator:
    def __init__(
        self, kube: KubeClient, crd_name: str = CRD_NAME, page_size: int = 100,
        events: EventRecorder | None = None, settle_seconds: float = 60.0,
        namespaces: Sequence[str] = (),
    ) -> None:
        self.kube = kube
        self.crd_name = crd_name
        self.page_size = page_size
        self.events = events
        self.settle_seconds = settle_seconds
        self.namespaces = tuple(namespaces)  # empty: every namespace

    def _wait_for_storage(self, group: str, version: str, kind: str, plural: str) -> bool:
        """Wait until the API server stores in `version`: a CRD change takes effect a moment
        after it is accepted, and an object re-stored before that would stay in the old
        version (kube-storage-version-migrator waits on the same discovery signal)."""
        wanted = storage_version_hash(group, version, kind)
        deadline = time.monotonic() + self.settle_seconds
        while True:
            try:
                resources = self.kube.request("GET", f"/apis/{group}/{version}")["resources"]
                current = next((r.get("storageVersionHash") for r in resources
                                if r.get("name") == plural), None)
            except (ApiError, KeyError):
                current = None
            if current == wanted:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)

    def _crd(self) -> Obj:
        return self.kube.request("GET", f"{CRD_PATH}/{self.crd_name}")

    def run(self, *, force: bool = False) -> MigrationReport:
        crd = self._crd()
        report = MigrationReport(storage_version(crd), stored_versions(crd))
        if is_migrated(crd) and not force:
            report.skipped = f"storedVersions is already [{report.storage_version!r}]"
            log.info(report.summary())
            return report
        group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
        kind = crd["spec"]["names"].get("kind", c.KIND)
        if not self._wait_for_storage(group, report.storage_version, kind, plural):
            report.failed.append(f"the API server does not store {plural} in "
                                 f"{report.storage_version} yet (discovery storageVersionHash)")
            log.warning(report.summary())
            return report
        base = f"/apis/{group}/{report.storage_version}"
        lists = ([f"{base}/namespaces/{ns}/{plural}" for ns in self.namespaces]
                 or [f"{base}/{plural}"])
        for path in lists:
            for item in self._list_all(path):
                report.listed += 1
                self._restore(base, plural, item, report)
        if report.failed:
            log.warning("%s; not trimming storedVersions: %s", report.summary(),
                        "; ".join(report.failed[:10]))
            return report
        if self.namespaces:
            report.untrimmed = (
                f"only namespaces {', '.join(self.namespaces)} are watched: objects elsewhere "
                "may still be stored in an old version; run `python -m "
                "thumbnail_operator.webhook.migrate` as a cluster admin to trim storedVersions")
            log.info(report.summary())
            return report
        self._trim(report)
        log.info(report.summary())
        return report

    def _list_all(self, path: str) -> list[Obj]:
        items: list[Obj] = []
        token = ""
        while True:
            query = {"limit": str(self.page_size)}
            if token:
                query["continue"] = token
            page = self.kube.request("GET", path, query=query)
            for item in page.get("items", []):
                item.setdefault("apiVersion", page.get("apiVersion"))
                item.setdefault("kind", c.KIND)
                items.append(item)
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return items

    def _restore(self, base: str, plural: str, item: Obj, report: MigrationReport) -> None:
        """Re-store one object through an empty patch of its status subresource.

        A status write persists the whole object, encoded in the storage version, without
        touching spec (the operator's RBAC has no spec write); it needs no resourceVersion
        precondition, so concurrent edits cannot make it conflict.
        """
        meta = item["metadata"]
        path = f"{base}/namespaces/{meta['namespace']}/{plural}/{meta['name']}/status"
        label = f"{meta['namespace']}/{meta['name']}"
        try:
            written = self.kube.request("PATCH", path, body={},
                                        content_type="application/merge-patch+json")
        except ApiError as err:
            if err.not_found:
                report.gone += 1
            else:
                report.failed.append(f"{label}: {err.message}")
            return
        if written["metadata"].get("resourceVersion") != meta.get("resourceVersion"):
            report.rewritten += 1
            if self.events is not None:
                self.events.record(written, "Normal", "StorageVersionMigrated",
                                   f"re-stored as {written.get('apiVersion')}")
        else:
            report.unchanged += 1

    def _trim(self, report: MigrationReport) -> None:
        crd = self._crd()
        if is_migrated(crd):
            report.trimmed = True
            return
        storage = storage_version(crd)
        if storage != report.storage_version:
            report.failed.append(f"storage version changed to {storage} during the migration")
            return
        # JSON patch with a test: fails rather than drop a version stored meanwhile by a
        # concurrent change of the CRD (the migration is then simply run again).
        patch = [
            {"op": "test", "path": "/metadata/resourceVersion",
             "value": crd["metadata"]["resourceVersion"]},
            {"op": "replace", "path": "/status/storedVersions", "value": [storage]},
        ]
        self.kube.request("PATCH", f"{CRD_PATH}/{self.crd_name}/status", body=patch,
                          content_type="application/json-patch+json")
        report.trimmed = True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Re-store every ThumbnailService in the CRD's "
                                     "storage version and trim status.storedVersions.")
    parser.add_argument("--kubeconfig")
    parser.add_argument("--force", action="store_true",
                        help="rewrite every object even if storedVersions is already trimmed")
    parser.add_argument("-n", "--namespace", action="append", default=[],
                        help="only this namespace (repeatable); storedVersions is then not "
                             "trimmed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    kube = KubeClient(load_configuration(args.kubeconfig))
    try:
        report = StorageVersionMigrator(
            kube, events=EventRecorder(kube), namespaces=args.namespace).run(force=args.force)
    finally:
        kube.close()
    print(json.dumps(report.__dict__, indent=2))
    return 1 if report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
