"""Prometheus Operator objects: how a cluster's Prometheus finds and judges this service.

- PodMonitor `NAME-server`: the API's `/metrics` (HTTP traffic, jobs by status, queue depth,
  dependencies up, live workers, oldest queued job);
- PodMonitor `NAME-worker`: the workers' `/metrics` on their health port (jobs by outcome,
  render and queue-wait seconds, retries, restarts);
- PrometheusRule `NAME`: the alerts below, scoped to this service's series by the job label
  a PodMonitor gives them (`<namespace>/<PodMonitor name>`).

Built only where the cluster serves monitoring.coreos.com/v1 (the reconciler asks discovery
once at start) and `spec.monitoring.enabled`; pruned like any child when turned off.
"""

from __future__ import annotations

from dataclasses import dataclass

from thumbnail_operator.builders.common import Context, Obj

API_VERSION = "monitoring.coreos.com/v1"
SCRAPE_INTERVAL = "30s"


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: str
    summary: str


def monitoring_objects(ctx: Context) -> list[Obj]:
    if not ctx.spec.monitoring.enabled:
        return []
    return [
        pod_monitor(ctx, "server", "http"),
        pod_monitor(ctx, "worker", "health"),
        prometheus_rule(ctx),
    ]


def pod_monitor(ctx: Context, component: str, port: str) -> Obj:
    return {
        "apiVersion": API_VERSION,
        "kind": "PodMonitor",
        "metadata": _metadata(ctx, ctx.names.of(component), component),
        "spec": {
            "selector": {"matchLabels": ctx.selector(component)},
            "podMetricsEndpoints": [
                {"port": port, "path": "/metrics", "interval": SCRAPE_INTERVAL}],
        },
    }


def alerts(ctx: Context) -> list[Alert]:
    """The alerts of one service; every expression selects only its own series."""
    api = f'job="{ctx.owner.namespace}/{ctx.names.server}"'
    workers = f'job="{ctx.owner.namespace}/{ctx.names.worker}"'
    # Failures the platform causes; a corrupt or unsupported upload is the client's.
    ours = 'reason=~"timeout|crashed|retries_exhausted"'
    return [
        Alert("ThumbnailDependencyDown",
              f"min by (dependency) (thumbnail_dependency_up{{{api}}}) == 0", "2m", "critical",
              "the API cannot reach {{ $labels.dependency }}: submissions and downloads fail "
              "with 503"),
        Alert("ThumbnailNoLiveWorker",
              f"max(thumbnail_workers_alive{{{api}}}) == 0 "
              f"and max(thumbnail_oldest_queued_job_age_seconds{{{api}}}) > 0",
              "5m", "critical", "jobs wait and no worker process is alive to run them"),
        Alert("ThumbnailBacklogStale",
              f"max(thumbnail_oldest_queued_job_age_seconds{{{api}}}) > 600", "5m", "warning",
              "the oldest queued job has waited {{ $value | humanizeDuration }}: the workers "
              "do not keep up"),
        Alert("ThumbnailApiErrors",
              f'sum(rate(thumbnail_http_requests_total{{{api},status=~"5.."}}[5m])) '
              f"/ sum(rate(thumbnail_http_requests_total{{{api}}}[5m])) > 0.05",
              "10m", "warning", "more than 5% of API requests fail with a 5xx"),
        Alert("ThumbnailJobsFailing",
              f'sum(rate(thumbnail_worker_jobs_finished_total{{{workers},outcome="failed",'
              f"{ours}}}[15m])) / sum(rate(thumbnail_worker_jobs_finished_total{{{workers}}}"
              "[15m])) > 0.05",
              "15m", "warning", "more than 5% of jobs fail for the platform's reasons (time "
              "limit, render crash, retries exhausted)"),
        Alert("ThumbnailWorkerRestarts",
              f"sum(increase(thumbnail_worker_process_restarts_total{{{workers}}}[15m])) "
              f"+ sum(increase(thumbnail_worker_render_process_restarts_total{{{workers},"
              'reason!="died_idle"}[15m])) > 3',
              "1m", "warning", "worker or render processes keep being restarted (kills, "
              "hangs, crashes, memory)"),
    ]


def prometheus_rule(ctx: Context) -> Obj:
    rules = [{
        "alert": alert.name,
        "expr": alert.expr,
        "for": alert.for_,
        "labels": {"severity": alert.severity},
        "annotations": {
            "summary": f"{ctx.owner.namespace}/{ctx.owner.name}: {alert.summary}",
            "description": "what to check: docs/operator.md, section Monitoring",
        },
    } for alert in alerts(ctx)]
    return {
        "apiVersion": API_VERSION,
        "kind": "PrometheusRule",
        "metadata": _metadata(ctx, ctx.owner.name, "monitoring"),
        "spec": {"groups": [
            {"name": f"thumbnail-service.{ctx.owner.namespace}.{ctx.owner.name}",
             "rules": rules}]},
    }


def _metadata(ctx: Context, name: str, component: str) -> Obj:
    meta = ctx.metadata(name, component)
    # The user's labels (a Prometheus' selectors) first: ours identify the child and win.
    meta["labels"] = {**ctx.spec.monitoring.labels, **meta["labels"]}
    return meta
