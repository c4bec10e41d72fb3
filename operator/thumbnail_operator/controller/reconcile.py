"""One level-based pass over a ThumbnailService: CR -> builders -> apply -> observed status.

Safe to run any number of times, from any trigger: it reads the current state, writes only
what differs from the desired state, and derives status from what the cluster reports.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from thumbnail_operator import constants as c
from thumbnail_operator import metrics
from thumbnail_operator.api.backup import Phase
from thumbnail_operator.api.conversion import V1, to_v1, to_v1alpha1
from thumbnail_operator.api.v1 import BackupDestination, ThumbnailServiceSpec, parse_spec
from thumbnail_operator.builders import (
    ChildKey,
    Names,
    Owner,
    api_endpoint,
    build_desired_state,
    external_secret_names,
)
from thumbnail_operator.builders.backup import BackupSource, resolved, restore_source_of
from thumbnail_operator.builders.common import Context
from thumbnail_operator.builders.credentials import (
    API_KEYS,
    DATABASE_PASSWORD,
    REDIS_PASSWORD,
    REGENERATE_ANNOTATION,
    ROTATE_ANNOTATION,
    S3_ACCESS_KEY,
    S3_SECRET_KEY,
    ResolvedCredentials,
    Rotation,
    resolve_credentials,
)
from thumbnail_operator.controller.autoscaling import Damper, Scaling, decide
from thumbnail_operator.controller.backups import make_due_backup
from thumbnail_operator.controller.diagnosis import (
    Cause,
    job_failure_message,
    needs_events,
    workload_cause,
)
from thumbnail_operator.controller.drift import (
    describe_extras,
    drifted_paths,
    removal_patch,
    unexpected_fields,
)
from thumbnail_operator.controller.events import EventRecorder
from thumbnail_operator.controller.processing import HEALTH_PATH, Processing, ProcessingMonitor
from thumbnail_operator.controller.rollout import gate_worker_rollout
from thumbnail_operator.controller.status import (
    StatusInputs,
    components,
    compute_status,
    now_rfc3339,
    workloads,
)
from thumbnail_operator.kube import (
    CHILD_KINDS,
    EVENT,
    POD,
    POD_MONITOR,
    SECRET,
    THUMBNAIL_BACKUP,
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
    # Seconds until this resource needs another pass although nothing changes (a held
    # scale-down of autoscaled workers); None: none needed.
    recheck_after: float | None = None


def _decode(secret: Obj | None) -> dict[str, str]:
    data: Mapping[str, str] = (secret or {}).get("data") or {}
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


class Reconciler:
    def __init__(
        self, kube: KubeClient, recorder: EventRecorder, kind: Kind = THUMBNAIL_SERVICE,
        processing: ProcessingMonitor | None = None, optional_kinds: tuple[Kind, ...] = (),
        autoscaling_probe_seconds: float | None = None,
    ) -> None:
        self.kube = kube
        self.events = recorder
        self.kind = kind  # the storage version; v1alpha1 only to act as the previous release
        self.processing = processing  # None: status.processing is left out
        # How often the API of an autoscaled resource is asked (None: like any other).
        self.autoscaling_probe_seconds = autoscaling_probe_seconds
        self.damper = Damper()
        # The kinds of every child: the optional ones the cluster serves (kube.OPTIONAL_...).
        self.child_kinds = (*CHILD_KINDS, *optional_kinds)

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
        self.processing = reconciler.processing
        self.reconciler = reconciler
        self.child_kinds = reconciler.child_kinds
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
        # A first pass finds nothing labelled: it creates without asking by name first.
        self.first_pass = not observed
        credentials, rotation = self._credentials(observed)
        restore, hold = self._restore(observed)
        processing = self._processing(observed, api_endpoint(self.owner, self.spec))
        running_workers = self._running_workers(observed)[0]
        scaling = self._autoscale(observed, processing)
        # Before anything is applied: `observed` follows what this pass writes.
        autoscaling_status = self._autoscaling_status(scaling, observed)
        if scaling is not None:
            self.outcome.recheck_after = scaling.recheck_after
            if scaling.replicas == 0 and processing is not None and not processing.queued_jobs:
                processing = dataclasses.replace(
                    processing, message="no worker runs: scaled to zero while no job waits")
        desired = build_desired_state(
            self.owner, self.spec, credentials.values, self._external_secrets(), rotation,
            restore, with_monitoring=POD_MONITOR in self.child_kinds,
            worker_replicas=None if scaling is None else scaling.replicas,
        )
        if hold:
            # Nothing may serve or process before the restore knows what to restore.
            apps = {self.names.server, self.names.worker}
            desired = dataclasses.replace(desired, children=[
                child for child in desired.children
                if not (child["kind"] == "Deployment" and child["metadata"]["name"] in apps)])
        config_hash = desired.config_hash
        if credentials.lost:
            # Nothing is written with credentials that would not open the existing data.
            config_hash = str((self.hub.get("status") or {}).get("configHash", ""))
        else:
            # A new worker image waits until the server (which runs the migrations) rolled
            # out.
            children, held = gate_worker_rollout(
                desired.children, observed, self.names.server, self.names.worker
            )
            if held:
                log.info("%s/%s: %s", self.namespace, self.owner.name, held)
            for child in sorted(children, key=_apply_order):
                self._converge(child, observed)
            wanted = {(child["kind"], child["metadata"]["name"]) for child in desired.children}
            self._prune(observed, wanted)
            self._announce_scaling(scaling, running_workers)
        self._schedule_backup()
        job_name = next(ch["metadata"]["name"] for ch in desired.children if ch["kind"] == "Job")
        pods = self._pods()
        inputs = StatusInputs(
            spec=self.spec,
            names=self.names,
            generation=int(self.cr["metadata"].get("generation", 1)),
            observed=observed,
            job_name=job_name,
            endpoint=desired.endpoint,
            config_hash=config_hash,
            errors=self.outcome.errors,
            previous=self.hub.get("status") or {},
            node_address=_node_address(pods.get("server", [])),
            processing=processing,
            rotation=rotation,
            autoscaling=autoscaling_status,
        )
        causes = self._causes(inputs, pods)
        self._write_status(compute_status(dataclasses.replace(inputs, causes=causes)))
        return self.outcome

    # -- backups -------------------------------------------------------------------------

    def _restore(self, observed: Mapping[ChildKey, Obj]) -> tuple[BackupSource | None, bool]:
        """The backup the API server restores (`spec.bootstrap.fromBackup`; None: none), and
        whether the API server and workers must wait for it to be known."""
        source = self.spec.bootstrap.from_backup
        if source is None:
            return None, False
        if source.backup_id:
            where = resolved(Context(owner=self.owner, spec=self.spec), source.destination)
            return BackupSource(source.backup_id, where), False
        name = str(source.backup_name)
        backup = self.kube.get(THUMBNAIL_BACKUP, self.namespace, name) or {}
        status = backup.get("status") or {}
        if status.get("phase") == Phase.COMPLETED.value and status.get("destination"):
            where = BackupDestination.model_validate(status["destination"])
            return BackupSource(name, where), False
        server = observed.get(("Deployment", self.names.server))
        if server is not None:
            # The restore ran (or runs) already: the backup object may go now (retention,
            # by hand); the server keeps the same restore container, which passes at once.
            return restore_source_of(server), False
        state = f"is {status.get('phase', 'Pending')}" if backup else "does not exist"
        self.outcome.errors.append(
            f"spec.bootstrap.fromBackup.backupName: ThumbnailBackup {name!r} {state}; the API "
            "server and workers start once it is Completed (or name another backup)")
        return None, True

    def _schedule_backup(self) -> None:
        try:
            name = make_due_backup(self.kube, self.events, self.cr, self.spec,
                                   datetime.now(UTC))
        except ValueError as err:
            self.outcome.errors.append(f"spec.backup.schedule: {err}")
            return
        if name:
            self.outcome.written.append(f"{c.BACKUP_KIND}/{name}")

    # -- credentials ---------------------------------------------------------------------

    def _credentials(
        self, observed: dict[ChildKey, Obj]
    ) -> tuple[ResolvedCredentials, Rotation | None]:
        """Resolve every credential (builders/credentials.py), rotating them when the
        ROTATE_ANNOTATION has a value not handled yet; report restores, losses, rotations.
        Returns them with the rotation to record on the copy (the last one, or this one)."""
        found: dict[str, Obj | None] = {}
        for name in (self.names.credentials, self.names.credentials_copy):
            # By name too: a Secret restored by hand (e.g. for retained volumes) has no labels.
            secret = observed.get(("Secret", name)) or self.kube.get(SECRET, self.namespace, name)
            if secret is not None:
                observed[("Secret", name)] = secret
            found[name] = secret
        annotations = self.cr["metadata"].get("annotations") or {}
        regenerate = annotations.get(REGENERATE_ANNOTATION) == "true"
        requested = annotations.get(ROTATE_ANNOTATION, "")
        rotation = Rotation.recorded_on(found[self.names.credentials_copy])
        rotate = bool(requested) and (rotation is None or rotation.token != requested)
        in_use = _credentials_in_use(observed, self.names)
        resolved = resolve_credentials(
            self.spec,
            _decode(found[self.names.credentials]),
            _decode(found[self.names.credentials_copy]),
            in_use=in_use,
            regenerate=regenerate,
            rotate=rotate,
        )
        if rotate:
            rotation = Rotation(requested, now_rfc3339())
            self.events.record(
                self.cr, "Normal", "CredentialsRotated",
                f"rotated {', '.join(resolved.rotated)} as {ROTATE_ANNOTATION}={requested} "
                "asks: the data stores and the pods using them restart with the new values; "
                "the previous API key stays valid until the next rotation",
            )
        label = f"Secret/{self.names.credentials}"
        if resolved.restored:
            self.events.record(
                self.cr, "Warning", "CredentialsRestored",
                f"{label} lacked {', '.join(resolved.restored)}: restored the values in use "
                f"from Secret/{self.names.credentials_copy}",
            )
        if resolved.lost:
            self.outcome.errors.append(
                f"credentials in use are gone: {', '.join(resolved.lost)} (from {label} and "
                f"its copy Secret/{self.names.credentials_copy}); the data stores and API "
                f"clients still use the old values. Re-create {label} with them, or annotate "
                f"the ThumbnailService {REGENERATE_ANNOTATION}=true to issue new ones (the "
                "data stores are restarted with them; clients need the new API key)"
            )
        elif regenerate and set(resolved.generated) & in_use:
            self.events.record(
                self.cr, "Warning", "CredentialsRegenerated",
                f"issued new {', '.join(resolved.generated)} as {REGENERATE_ANNOTATION} asks; "
                "remove the annotation",
            )
        return resolved, rotation

    # -- is anything processing jobs ------------------------------------------------------

    def _processing(self, observed: Mapping[ChildKey, Obj], endpoint: str) -> Processing | None:
        """The API's last answer about live workers and waiting jobs (controller/processing);
        asked only while a server pod is ready behind the Service."""
        monitor = self.processing
        if monitor is None:
            return None
        if not monitor.enabled:
            return Processing("not observed: the operator's processing probe is off")
        server = observed.get(("Deployment", self.names.server)) or {}
        serving = (int(server.get("status", {}).get("readyReplicas", 0)) > 0
                   and ("Service", self.names.server) in observed)
        key = (self.namespace, self.owner.name)
        interval = (self.reconciler.autoscaling_probe_seconds
                    if self.spec.workers.autoscaling is not None else None)
        answer = monitor.watch(key, endpoint + HEALTH_PATH if serving else None, interval)
        if answer is not None:
            return answer
        if not serving:
            return Processing("not observed: no API server is ready")
        # Asked now: until the answer comes (which triggers a pass), what was last seen
        # stands - a restarted operator must not rewrite every status twice.
        previous = (self.hub.get("status") or {}).get("processing")
        if previous:
            return Processing.from_status(previous)
        return Processing("waiting for the API server's first answer")

    # -- autoscaled workers ----------------------------------------------------------------

    def _running_workers(self, observed: Mapping[ChildKey, Obj]) -> tuple[int | None, int]:
        """Workers the Deployment asks for (None: no Deployment yet) and how many are ready."""
        deployment = observed.get(("Deployment", self.names.worker))
        if deployment is None:
            return None, 0
        ready = int((deployment.get("status") or {}).get("readyReplicas", 0))
        return int(deployment.get("spec", {}).get("replicas", 1)), ready

    def _autoscale(
        self, observed: Mapping[ChildKey, Obj], processing: Processing | None
    ) -> Scaling | None:
        """The workers' size under `workers.autoscaling` (controller/autoscaling.py); None
        while it is unset. A change is an Event."""
        workers = self.spec.workers
        policy = workers.autoscaling
        key = (self.namespace, self.owner.name)
        if policy is None:
            self.reconciler.damper.forget(key)
            return None
        running, ready = self._running_workers(observed)
        if self.processing is None or not self.processing.enabled:
            scaling = Scaling(policy.max_replicas, "the operator does not ask the API "
                              "(--processing-probe-seconds 0): running maxReplicas")
        else:
            since = processing.oldest_queued_job_since if processing else None
            scaling = decide(
                key, workers, processing.demand if processing else None,
                unknown_why=processing.message if processing else "not observed",
                running=running, ready=ready,
                oldest_wait_seconds=_seconds_since(since) if since else None,
                damper=self.reconciler.damper, now=time.monotonic(),
            )
        return scaling

    def _announce_scaling(self, scaling: Scaling | None, running: int | None) -> None:
        """An Event for a size change this pass wrote (not for one held back)."""
        written = f"Deployment/{self.names.worker}" in self.outcome.written
        if scaling is not None and written and running not in (None, scaling.replicas):
            self.events.record(self.cr, "Normal", "ScaledWorkers",
                               f"{running} -> {scaling.replicas} workers: {scaling.message}")

    def _autoscaling_status(
        self, scaling: Scaling | None, observed: Mapping[ChildKey, Obj]
    ) -> Obj | None:
        if scaling is None:
            return None
        previous = (self.hub.get("status") or {}).get("autoscaling") or {}
        return scaling.as_status(previous, self._running_workers(observed)[0], now_rfc3339())

    # -- why components are not ready -----------------------------------------------------

    def _pods(self) -> dict[str, list[Obj]]:
        """This resource's pods by component (one list request per pass)."""
        labels = {c.LABEL_INSTANCE: self.owner.name, c.LABEL_MANAGED_BY: c.FIELD_MANAGER}
        by_component: dict[str, list[Obj]] = {}
        for pod in self.kube.list(POD, self.namespace, labels):
            component = pod["metadata"].get("labels", {}).get(c.LABEL_COMPONENT, "")
            by_component.setdefault(component, []).append(pod)
        return by_component

    def _causes(self, inputs: StatusInputs, pods: dict[str, list[Obj]]) -> dict[str, Cause]:
        """For each component that is not ready: what its controller, pods or Events say."""
        causes: dict[str, Cause] = {}
        states = components(inputs.spec, inputs.names, inputs.observed, inputs.job_name)
        for status_name, owner in workloads(self.names).items():
            if states[status_name].ready:
                continue
            workload = inputs.observed.get(owner.key)
            if workload is None:
                continue  # "not created yet" stays as it is (the CRD's rules read it)
            own_pods = pods.get(owner.component, [])
            events: list[Obj] = []
            if needs_events(workload, own_pods):
                kind, name = owner.key
                events = self.kube.list(EVENT, self.namespace, {}, fields={
                    "involvedObject.kind": kind, "involvedObject.name": name,
                })
            cause = workload_cause(workload, own_pods, events)
            if cause is not None:
                causes[status_name] = cause
        buckets = states.get("buckets")
        if buckets is not None and buckets.failed:
            job_pods = sorted(pods.get("bucket-init", []),
                              key=lambda p: p["metadata"].get("creationTimestamp", ""))
            tail = ""
            if job_pods:
                last = job_pods[-1]
                tail = self.kube.log_tail(self.namespace, last["metadata"]["name"],
                                          last["spec"]["containers"][0]["name"])
            causes["buckets"] = Cause("JobFailed", job_failure_message(buckets.message, tail), True)
        elif buckets is not None and not buckets.ready:
            cause = workload_cause(None, pods.get("bucket-init", []))
            if cause is not None:
                causes["buckets"] = cause
        return causes

    def _observe_children(self) -> dict[ChildKey, Obj]:
        labels = {c.LABEL_INSTANCE: self.owner.name, c.LABEL_MANAGED_BY: c.FIELD_MANAGER}
        observed: dict[ChildKey, Obj] = {}
        for kind in self.child_kinds:
            for obj in self.kube.list(kind, self.namespace, labels):
                observed[(kind.kind, obj["metadata"]["name"])] = obj
        # Unlabelled ones (a hand-edited label, a leftover) are looked up by name in _converge.
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
        if current is None and not self.first_pass:
            # Not labelled as ours (any more): look for it by name, so a child whose labels
            # were edited is repaired, not "created", and an unlabelled leftover is adopted.
            current = self.kube.get(kind_of(child), self.namespace, key[1])
        drift: list[str] = []
        extras: list[tuple[str, Any]] = []
        if current is not None:
            drift = drifted_paths(child, current)
            extras = unexpected_fields(child, current)
            if not drift and not extras:
                return
        created = False
        try:
            if current is None and child["kind"] == "Secret":
                observed[key], created = self._create_credentials(child), True
            elif drift or current is None:
                observed[key], created = self.kube.apply(child)
            if extras:
                # Server-side apply keeps fields of other managers: remove them explicitly.
                extras = unexpected_fields(child, observed[key])
                if extras:
                    observed[key] = self.kube.json_patch(child, removal_patch(extras))
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
            self._announce_change(label, child, current, drift, extras)

    def _announce_change(
        self, label: str, child: Obj, current: Obj | None, drift: list[str],
        extras: list[tuple[str, Any]],
    ) -> None:
        """Updated (the desired object changed) or Repaired (someone changed the object)."""
        changes = [*drift, *(f"{name} removed" for name in describe_extras(extras))]
        detail = ", ".join(changes[:5]) + (" ..." if len(changes) > 5 else "")
        before = (current or {}).get("metadata", {})
        owned = any(ref.get("uid") == self.owner.uid for ref in before.get("ownerReferences", []))
        # The credentials copy has no owner on purpose (Retain): updating it adopts nothing.
        if not owned and child["metadata"].get("ownerReferences"):
            self.events.record(self.cr, "Normal", "Adopted",
                               f"adopted {label}, an existing object of that name ({detail})")
            return
        applied = before.get("annotations", {}).get(c.APPLIED_HASH_ANNOTATION)
        if applied == child["metadata"]["annotations"][c.APPLIED_HASH_ANNOTATION]:
            self.events.record(self.cr, "Normal", "Repaired",
                               f"repaired {label}: changed outside the operator ({detail})")
        else:
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
        # A None in the merge patch removes that key: compare as the stored status will be.
        if all(previous.get(key) == _without_nulls(value) for key, value in status.items()):
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
        """Events on Ready transitions and on every new failure, not on each retry.

        Warnings only for real problems (Degraded): a routine rollout taking Ready to False
        is Normal, so alerting on Warning Events does not page anyone for it."""
        old_ready, new_ready = _condition(previous, "Ready"), _condition(status, "Ready")
        old_degraded, degraded = _condition(previous, "Degraded"), _condition(status, "Degraded")
        if old_ready.get("status") != new_ready["status"] and degraded["status"] != "True":
            self.events.record(self.cr, "Normal", new_ready["reason"], new_ready["message"])
        if degraded["status"] == "True" and (
            old_degraded.get("status") != "True"
            or old_degraded.get("message") != degraded["message"]
        ):
            self.events.record(self.cr, "Warning", degraded["reason"], degraded["message"])
        elif degraded["status"] != "True" and old_degraded.get("status") == "True":
            self.events.record(self.cr, "Normal", "Recovered", "no longer degraded")


# What pods read first (configuration, credentials), then the children that take longest to
# settle: the bucket-init Job (the Job controller reports completion in 1 s batches, the last
# step before Ready in docs/bench/operator.md), the StatefulSets (volumes bind first), the
# Deployments; Services settle at once. Stable: the builders' order within a kind.
_APPLY_ORDER = {"ConfigMap": 0, "Secret": 0, "Job": 1, "StatefulSet": 2, "Deployment": 3}


def _apply_order(child: Obj) -> int:
    return _APPLY_ORDER.get(child["kind"], 4)


def _credentials_in_use(observed: Mapping[ChildKey, Obj], names: Names) -> set[str]:
    """Keys some existing workload was started with (so never to be replaced silently)."""
    users = {
        API_KEYS: "server", DATABASE_PASSWORD: "postgresql", REDIS_PASSWORD: "redis",
        S3_ACCESS_KEY: "objectStorage", S3_SECRET_KEY: "objectStorage",
    }
    by_component = workloads(names)
    return {key for key, user in users.items() if by_component[user].key in observed}


def _node_address(server_pods: list[Obj]) -> str:
    """The node of a ready server pod: an address where the NodePort answers."""
    hosts = sorted(
        pod["status"]["hostIP"] for pod in server_pods
        if (pod.get("status") or {}).get("hostIP") and any(
            cond.get("type") == "Ready" and cond.get("status") == "True"
            for cond in pod["status"].get("conditions", [])
        )
    )
    return hosts[0] if hosts else ""


def _condition(status: Obj, type_: str) -> Obj:
    for cond in status.get("conditions", []):
        if cond.get("type") == type_:
            return dict(cond)
    return {}


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


def _seconds_since(rfc3339: str) -> float | None:
    """Seconds from a status time (e.g. 2026-12-07T09:15:30Z) to now; None if not a time."""
    try:
        moment = datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max((datetime.now(UTC) - moment).total_seconds(), 0.0)
