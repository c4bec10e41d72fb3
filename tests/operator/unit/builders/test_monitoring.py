"""PodMonitors and the PrometheusRule (builders/monitoring.py)."""

from __future__ import annotations

from typing import Any

import promql_parser
import pytest

from tests.operator.unit.helpers import OWNER, by_name
from thumbnail_operator import constants as c
from thumbnail_operator.api.v1 import parse_spec
from thumbnail_operator.builders import build_desired_state
from thumbnail_operator.builders.common import Context
from thumbnail_operator.builders.credentials import ensure_credentials
from thumbnail_operator.builders.monitoring import alerts

Obj = dict[str, Any]
MONITORING_KINDS = ("PodMonitor", "PrometheusRule")


def children(spec: Obj | None = None, *, served: bool = True) -> dict[tuple[str, str], Obj]:
    model = parse_spec(spec or {})
    return by_name(build_desired_state(OWNER, model, ensure_credentials(model, None), {},
                                       with_monitoring=served))


def monitoring(spec: Obj | None = None, *, served: bool = True) -> dict[tuple[str, str], Obj]:
    return {key: obj for key, obj in children(spec, served=served).items()
            if key[0] in MONITORING_KINDS}


def test_a_cluster_with_the_crds_gets_two_pod_monitors_and_a_rule() -> None:
    assert set(monitoring()) == {("PodMonitor", "demo-server"), ("PodMonitor", "demo-worker"),
                                 ("PrometheusRule", "demo")}


def test_none_without_the_crds_or_when_turned_off() -> None:
    assert monitoring(served=False) == {}
    assert monitoring({"monitoring": {"enabled": False}}) == {}


@pytest.mark.parametrize(("name", "port"), [("demo-server", c.API_PORT),
                                            ("demo-worker", c.WORKER_HEALTH_PORT)])
def test_a_pod_monitor_scrapes_a_named_port_of_exactly_its_pods(name: str, port: int) -> None:
    found = children()
    monitor = found[("PodMonitor", name)]["spec"]
    template = found[("Deployment", name)]["spec"]["template"]
    assert monitor["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    (endpoint,) = monitor["podMetricsEndpoints"]
    (main,) = template["spec"]["containers"]
    named = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert named[endpoint["port"]] == port and endpoint["path"] == "/metrics"


def test_every_alert_is_valid_promql_scoped_to_this_service() -> None:
    rule = monitoring()[("PrometheusRule", "demo")]
    (group,) = rule["spec"]["groups"]
    assert {r["alert"] for r in group["rules"]} == {a.name for a in alerts(
        Context(owner=OWNER, spec=parse_spec({})))}
    for item in group["rules"]:
        promql_parser.parse(item["expr"])  # ValueError on a syntax error
        assert 'job="media/demo-server"' in item["expr"] or 'job="media/demo-worker"' in item[
            "expr"], item["expr"]
        assert item["labels"]["severity"] in ("warning", "critical")
        assert item["annotations"]["summary"].startswith("media/demo: ")


def test_user_labels_go_on_every_object_but_never_replace_ours() -> None:
    labels = {"release": "prometheus", c.LABEL_INSTANCE: "hijack"}
    for obj in monitoring({"monitoring": {"labels": labels}}).values():
        assert obj["metadata"]["labels"]["release"] == "prometheus"
        assert obj["metadata"]["labels"][c.LABEL_INSTANCE] == "demo"
