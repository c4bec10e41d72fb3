"""One operator instance's controller: client, reconciler and work queue, plus accounting."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from kubernetes import client

from thumbnail_operator import metrics
from thumbnail_operator.controller.backups import BackupReconciler
from thumbnail_operator.controller.events import EventRecorder
from thumbnail_operator.controller.processing import ProcessingMonitor
from thumbnail_operator.controller.reconcile import ReconcileFailed, Reconciler, RetryNeeded
from thumbnail_operator.controller.workqueue import ResourceKey, WorkQueue
from thumbnail_operator.kube import OPTIONAL_CHILD_KINDS, Kind, KubeClient
from thumbnail_operator.settings import OperatorSettings

log = logging.getLogger(__name__)


def served_optional_kinds(kube: KubeClient) -> tuple[Kind, ...]:
    """The optional child kinds this cluster serves, asked once at start (said in one line)."""
    served = kube.served(OPTIONAL_CHILD_KINDS)
    missing = [kind.kind for kind in OPTIONAL_CHILD_KINDS if kind not in served]
    if missing:
        log.info("%s not served (no Prometheus Operator CRDs): ThumbnailServices get none; "
                 "restart the operator after installing them", " and ".join(missing))
    else:
        log.info("creating %s for ThumbnailServices (spec.monitoring)",
                 " and ".join(kind.kind for kind in served))
    return served


@dataclass
class Controller:
    """The reconcile side of one operator instance: its API client, reconciler, work queue
    and per-pass accounting, shared by the kopf handlers."""

    configuration: client.Configuration
    settings: OperatorSettings = field(default_factory=lambda: OperatorSettings())
    kube: KubeClient = field(init=False)
    events: EventRecorder = field(init=False)
    reconciler: Reconciler = field(init=False)
    queue: WorkQueue = field(init=False)
    backups: BackupReconciler = field(init=False)
    backup_queue: WorkQueue = field(init=False)
    processing: ProcessingMonitor = field(init=False)
    passes: int = 0
    passes_by_key: Counter[ResourceKey] = field(default_factory=Counter)
    # A pass asked for once nothing else would trigger it in time (Outcome.recheck_after).
    _rechecks: dict[ResourceKey, asyncio.TimerHandle] = field(default_factory=dict)
    _executor: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        # Passes mostly wait for the API server, so more of them run at once than there are
        # cores (asyncio.to_thread's default pool has cpu_count + 4 threads: 6 on 2 cores,
        # which bounded how fast 100 new resources got their children; docs/bench/operator.md).
        workers = self.settings.workers
        # One pooled connection per worker thread, the event thread and kopf's own calls.
        self.kube = KubeClient(self.configuration, pool_size=workers + 4)
        self.events = EventRecorder(self.kube, background=True)
        self.queue = WorkQueue(self.reconcile, resync_seconds=self.settings.resync_seconds)
        self.processing = ProcessingMonitor(
            self.queue.trigger, interval=self.settings.processing_probe_seconds
        )
        self.reconciler = Reconciler(
            self.kube, self.events, processing=self.processing,
            optional_kinds=served_optional_kinds(self.kube),
            autoscaling_probe_seconds=self.settings.autoscaling_probe_seconds,
        )
        self.backups = BackupReconciler(self.kube, self.events)
        self.backup_queue = WorkQueue(self.reconcile_backup,
                                      resync_seconds=self.settings.resync_seconds)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="reconcile")

    def close(self) -> None:
        """After the queue stopped: finish posting Events, release threads and connections."""
        self._executor.shutdown(wait=True)
        self.events.close()
        self.kube.close()

    async def reconcile_backup(self, key: ResourceKey) -> None:
        """One pass over a ThumbnailBackup (controller/backups.py); errors are retried."""
        await asyncio.get_running_loop().run_in_executor(
            self._executor, self.backups.reconcile, *key)

    def _recheck(self, key: ResourceKey, after: float | None) -> None:
        """One pending timer per resource: the latest pass says when (or that none is due)."""
        previous = self._rechecks.pop(key, None)
        if previous is not None:
            previous.cancel()
        if after is not None:
            self._rechecks[key] = asyncio.get_running_loop().call_later(
                max(after, 0.0) + 0.5, self.queue.trigger, key)

    async def reconcile(self, key: ResourceKey) -> None:
        namespace, name = key
        started = time.monotonic()
        try:
            outcome = await asyncio.get_running_loop().run_in_executor(
                self._executor, self.reconciler.reconcile, namespace, name
            )
        except RetryNeeded:
            metrics.RECONCILES.labels(result="retry").inc()
            raise
        except Exception:
            metrics.RECONCILES.labels(result="error").inc()
            metrics.RECONCILE_ERRORS.inc()
            raise
        finally:
            metrics.RECONCILE_DURATION.observe(time.monotonic() - started)
            self.passes += 1
            self.passes_by_key[key] += 1
        self._recheck(key, outcome.recheck_after)
        metrics.RECONCILES.labels(result="error" if outcome.errors else "ok").inc()
        if outcome.errors:
            metrics.RECONCILE_ERRORS.inc()
        if outcome.status_written:
            metrics.STATUS_WRITES.inc()
        if outcome.written or outcome.deleted or outcome.errors:
            log.info(
                "reconciled %s/%s: wrote %s, deleted %s, errors %s",
                namespace, name, outcome.written, outcome.deleted, outcome.errors,
            )
        if outcome.errors:
            raise ReconcileFailed("; ".join(outcome.errors))  # the queue retries with backoff
