"""Prometheus metrics of the operator process (RED for reconciles, writes per child kind)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECONCILES = Counter(
    "thumbnail_operator_reconciles_total",
    "Reconcile passes, by result (ok, error, retry).",
    ["result"],
)
RECONCILE_ERRORS = Counter(
    "thumbnail_operator_reconcile_errors_total",
    "Reconcile passes that raised or left errors in status.",
)
RECONCILE_DURATION = Histogram(
    "thumbnail_operator_reconcile_duration_seconds",
    "Duration of one reconcile pass.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CHILD_WRITES = Counter(
    "thumbnail_operator_child_writes_total",
    "Writes to child objects, by kind and action (created, updated, deleted, failed).",
    ["kind", "action"],
)
STATUS_WRITES = Counter(
    "thumbnail_operator_status_writes_total",
    "Status subresource updates.",
)
