"""The operator's alerts and the Grafana dashboard (docs/grafana/) ask only for metrics the
service really exports, in valid PromQL: a renamed metric fails here, not silently in a
user's Prometheus."""

from __future__ import annotations

import json
import re
from typing import Any

import promql_parser
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from tests.deploy.support import ROOT
from thumbnail_operator.api.v1 import parse_spec
from thumbnail_operator.builders import Owner
from thumbnail_operator.builders.common import Context
from thumbnail_operator.builders.monitoring import alerts
from thumbnail_service.api import metrics as api_metrics
from thumbnail_service.api import workers as api_workers  # noqa: F401 (registers its gauges)
from thumbnail_service.worker import metrics as worker_metrics

DASHBOARD = ROOT / "docs" / "grafana" / "thumbnail-service.json"
NAME = re.compile(r"\bthumbnail_[a-z0-9_]+\b")
# The dashboard's variables, as Grafana fills them in.
VARIABLES = {"$namespace": "media", "$service": "demo"}


def _exported() -> set[str]:
    """Every series name the API and a worker pod expose (histograms: their _bucket etc.)."""
    workers = CollectorRegistry()
    for value in vars(worker_metrics).values():
        if isinstance(value, MetricWrapperBase):
            workers.register(value)
    text = "".join(generate_latest(registry).decode()
                   for registry in (api_metrics.REGISTRY, workers))
    text += worker_metrics.exposition(None, []).decode()  # the supervisor's own
    names: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names |= ({f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "histogram"
                  else {name})
    return names


def _dashboard_exprs() -> list[str]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    exprs += [var["query"]["query"] for var in dashboard["templating"]["list"]
              if var["type"] == "query"]
    for variable, value in VARIABLES.items():
        exprs = [expr.replace(variable, value) for expr in exprs]
    return exprs


def _alert_exprs() -> list[str]:
    ctx = Context(owner=Owner("demo", "media", "uid"), spec=parse_spec({}))
    return [alert.expr for alert in alerts(ctx)]


def test_the_name_list_is_real() -> None:
    exported = _exported()
    assert "thumbnail_worker_jobs_finished_total" in exported
    assert "thumbnail_http_request_duration_seconds_bucket" in exported
    assert "thumbnail_worker_process_restarts_total" in exported


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_expression_parses_and_names_exported_metrics(source: str) -> None:
    exprs = _alert_exprs() if source == "alerts" else _dashboard_exprs()
    exported = _exported()
    assert exprs
    for expr in exprs:
        if not expr.startswith("label_values("):  # a Grafana function, not PromQL
            promql_parser.parse(expr)
        unknown = set(NAME.findall(expr)) - exported
        assert not unknown, (expr, unknown)


def test_the_dashboard_selects_one_service_by_the_pod_monitors_job_label() -> None:
    for expr in _dashboard_exprs():
        if not expr.startswith("label_values("):
            assert re.search(r'job="media/demo-(server|worker)"', expr), expr
