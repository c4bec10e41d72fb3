"""One level-based pass over a ThumbnailService: CR -> builders -> apply -> observed status.

Safe to run any number of times, from any trigger: it reads the current state, writes only
what differs from the desired state, and derives status from what the cluster reports.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from thumbnail_operator import constants as c
from thumbnail_operator import metrics
from thumbnail_operator.api.conversion import V1, to_v1, to_v1alpha1
from thumbnail_operator.api.v1 import ThumbnailServiceSpec, parse_spec
from thumbnail_operator.builders import (
    ChildKey,
    Names,
    Owner,
    build_desired_state,
    external_secret_names,
)
from thumbnail_operator.builders.credentials import ensure_credentials
from thumbnail_operator.controller.drift import drifted_paths
from thumbnail_operator.controller.events import EventRecorder
from thumbnail_operator.controller.rollout import gate_worker_rollout
from thumbnail_operator.controller.status import StatusInputs, compute_status
from thumbnail_operator.kube import (
    CHILD_KINDS,
    SECRET,
    THUMBNAIL_SERVICE,
    ApiError,
    Kind,
    KubeClient,
    kind_of,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class RetryNeeded(Exception):
    """The pass could not finish (e.g. lost a creation race); run it again soon."""


class ReconcileFailed(Exception):
    """The pass finished but left errors (also reported in status); retry with backoff."""


@dataclass
class Outcome:
    """What one pass did, for logs, metrics and tests."""

    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    status_written: bool = False
    skipped: str = ""


def _decode(secret: Obj | None) -> dict[str, str]:
    data: Mapping[str, str] = (secret or {}).get("data") or {}
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


class Reconciler:
    def __init__(
        self, kube: KubeClient, recorder: EventRecorder, kind: Kind = THUMBNAIL_SERVICE
    ) -> None:
        self.kube = kube
        self.events = recorder
        self.kind = kind  # the storage version; v1alpha1 only to act as the previous release

    def reconcile(self, namespace: str, name: str) -> Outcome:
        # The storage version, whatever version the object was created in (the API server
        # converts through the webhook).
        cr = self.kube.get(self.kind, namespace, name)
        if cr is None:
            return Outcome(skipped="gone")
        meta = cr["metadata"]
        if meta.get("deletionTimestamp"):
            return Outcome(skipped="being deleted (children are garbage-collected)")
        if meta.get("annotations", {}).get(c.PAUSE_ANNOTATION) == "true":
            return Outcome(skipped=f"paused by {c.PAUSE_ANNOTATION}")
        return _Pass(self, cr).run()


class _Pass:
    """State of a single reconcile pass over one ThumbnailService."""

    def __init__(self, reconciler: Reconciler, cr: Obj) -> None:
        self.kube = reconciler.kube
        self.events = reconciler.events
        self.kind = reconciler.kind
        self.cr = cr
        meta = cr["metadata"]
        self.namespace: str = meta["namespace"]
        self.owner = Owner(meta["name"], self.namespace, meta["uid"], cr["apiVersion"])
        self.names = Names(meta["name"])
        # The pass reads the v1 hub. Only the upgrade tests run it as the previous release,
        # over v1alpha1 objects, which go through the webhook's pure conversion here.
        self.hub = cr if cr["apiVersion"] == V1 else to_v1(cr)
        self.spec: ThumbnailServiceSpec = parse_spec(self.hub.get("spec"))
        self.outcome = Outcome()

    def run(self) -> Outcome:
        observed = self._observe_children()
        secret_key = ("Secret", self.names.credentials)
        # By name too: a Secret restored by hand (e.g. to reuse retained volumes) has no labels.
        existing = observed.get(secret_key) or self.kube.get(
            SECRET, self.namespace, self.names.credentials
        )
        if existing is not None:
            observed[secret_key] = existing
        credentials = ensure_credentials(self.spec, _decode(existing))
        desired = build_desired_state(
            self.owner, self.spec, credentials, self._external_secrets()
        )
        # A new worker image waits until the server (which runs the migrations) rolled out.
        children, held = gate_worker_rollout(
            desired.children, observed, self.names.server, self.names.worker
        )
        if held:
            log.info("%s/%s: %s", self.namespace, self.owner.name, held)
        for child in sorted(children, key=_apply_order):
            self._converge(child, observed)
        wanted = {(child["kind"], child["metadata"]["name"]) for child in desired.children}
        self._prune(observed, wanted)
        job_name = next(ch["metadata"]["name"] for ch in desired.children if ch["kind"] == "Job")
        status = compute_status(
            StatusInputs(
                spec=self.spec,
                names=self.names,
                generation=int(self.cr["metadata"].get("generation", 1)),
                observed=observed,
                job_name=job_name,
                endpoint=desired.endpoint,
                config_hash=desired.config_hash,
                errors=self.outcome.errors,
                previous=self.hub.get("status") or {},
            )
        )
        self._write_status(status)
        return self.outcome

    def _observe_children(self) -> dict[ChildKey, Obj]:
        labels = {c.LABEL_INSTANCE: self.owner.name, c.LABEL_MANAGED_BY: c.FIELD_MANAGER}
        observed: dict[ChildKey, Obj] = {}
        for kind in CHILD_KINDS:
            for obj in self.kube.list(kind, self.namespace, labels):
                observed[(kind.kind, obj["metadata"]["name"])] = obj
        # Unlabelled leftovers (e.g. a hand-edited label) are found by name when applied.
        return observed

    def _external_secrets(self) -> dict[str, dict[str, str]]:
        """User-owned Secrets the pods read; their content is part of the config hash."""
        found: dict[str, dict[str, str]] = {}
        for secret_name in external_secret_names(self.owner, self.spec):
            secret = self.kube.get(SECRET, self.namespace, secret_name)
            if secret is None:
                self.outcome.errors.append(f"Secret {secret_name!r} (referenced) is missing")
                continue
            found[secret_name] = _decode(secret)
        return found

    def _converge(self, child: Obj, observed: dict[ChildKey, Obj]) -> None:
        key = (child["kind"], child["metadata"]["name"])
        label = f"{key[0]}/{key[1]}"
        # Children come from the labelled list (and the credentials Secret by name, see run);
        # one that is missing there is applied at once: server-side apply creates it, or
        # takes over an unlabelled leftover of the same name (whose labels drifted anyway).
        # No GET by name first: that was one more request per child in every first pass.
        current = observed.get(key)
        drift: list[str] = []
        if current is not None:
            drift = drifted_paths(child, current)
            if not drift:
                return
        created = False
        try:
            if current is None and child["kind"] == "Secret":
                observed[key], created = self._create_credentials(child), True
            else:
                observed[key], created = self.kube.apply(child)
        except ApiError as err:
            message = f"applying {label} failed: {err.message}"
            self.outcome.errors.append(message)  # reported once, by the Degraded transition
            metrics.CHILD_WRITES.labels(kind=key[0], action="failed").inc()
            log.warning("%s/%s: %s", self.namespace, self.owner.name, message)
            return
        self.outcome.written.append(label)
        if created:
            metrics.CHILD_WRITES.labels(kind=key[0], action="created").inc()
            self.events.record(self.cr, "Normal", "Created", f"created {label}")
        else:
            metrics.CHILD_WRITES.labels(kind=key[0], action="updated").inc()
            fields = ", ".join(drift[:5]) + (" ..." if len(drift) > 5 else "")
            detail = fields or "adopted an existing object of that name"
            self.events.record(self.cr, "Normal", "Updated", f"updated {label} ({detail})")

    def _create_credentials(self, secret: Obj) -> Obj:
        # Create, never apply, a new credentials Secret: if another operator replica won the
        # race, its values stand and this pass retries with them instead of overwriting them.
        try:
            return self.kube.create(secret)
        except ApiError as err:
            if err.conflict:
                raise RetryNeeded("credentials Secret created concurrently") from err
            raise

    def _prune(self, observed: dict[ChildKey, Obj], wanted: set[ChildKey]) -> None:
        """Delete children this resource owns but no longer wants (e.g. NodePort turned off)."""
        for key, obj in list(observed.items()):
            owners = obj["metadata"].get("ownerReferences", [])
            ours = any(ref.get("uid") == self.owner.uid for ref in owners)
            if key in wanted or not ours:
                continue
            label = f"{key[0]}/{key[1]}"
            try:
                self.kube.delete(kind_of(obj), self.namespace, key[1])
            except ApiError as err:
                self.outcome.errors.append(f"deleting {label} failed: {err.message}")
                continue
            del observed[key]
            self.outcome.deleted.append(label)
            metrics.CHILD_WRITES.labels(kind=key[0], action="deleted").inc()
            self.events.record(self.cr, "Normal", "Deleted", f"deleted {label} (no longer wanted)")

    def _write_status(self, computed: Obj) -> None:
        status = self._in_own_version(computed)
        previous = self.cr.get("status") or {}
        if all(previous.get(key) == value for key, value in status.items()):
            return
        self.kube.patch_status(self.kind, self.namespace, self.owner.name, status)
        self.outcome.status_written = True
        self._announce_transitions(previous, status)

    def _in_own_version(self, status: Obj) -> Obj:
        if self.cr["apiVersion"] == V1:
            return status
        hub = {"apiVersion": V1, "kind": c.KIND, "metadata": {}, "status": status}
        converted: Obj = to_v1alpha1(hub)["status"]
        return converted

    def _announce_transitions(self, previous: Obj, status: Obj) -> None:
        """Events on Ready transitions and on every new failure, not on each retry."""
        old_ready, new_ready = _condition(previous, "Ready"), _condition(status, "Ready")
        if old_ready.get("status") != new_ready["status"]:
            became_ready = new_ready["status"] == "True"
            # A brand-new resource that is not ready yet is expected, not a warning.
            type_ = "Normal" if became_ready or not old_ready else "Warning"
            self.events.record(self.cr, type_, new_ready["reason"], new_ready["message"])
        old_degraded, degraded = _condition(previous, "Degraded"), _condition(status, "Degraded")
        if degraded["status"] == "True" and (
            old_degraded.get("status") != "True"
            or old_degraded.get("message") != degraded["message"]
        ):
            self.events.record(self.cr, "Warning", "ReconcileFailed", degraded["message"])


# What pods read first (configuration, credentials), then the children that take longest to
# settle: the bucket-init Job (the Job controller reports completion in 1 s batches, the last
# step before Ready in docs/bench/operator.md), the StatefulSets (volumes bind first), the
# Deployments; Services settle at once. Stable: the builders' order within a kind.
_APPLY_ORDER = {"ConfigMap": 0, "Secret": 0, "Job": 1, "StatefulSet": 2, "Deployment": 3}


def _apply_order(child: Obj) -> int:
    return _APPLY_ORDER.get(child["kind"], 4)


def _condition(status: Obj, type_: str) -> Obj:
    for cond in status.get("conditions", []):
        if cond.get("type") == type_:
            return dict(cond)
    return {}
