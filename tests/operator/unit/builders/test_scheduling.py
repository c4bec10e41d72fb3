"""Scheduling: each component's placement lands in its own pod template, and only there."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.operator.unit.helpers import by_name, desired, pod_specs
from tests.operator.unit.objects import SCHEDULING
from thumbnail_operator import constants as c
from thumbnail_operator.api.v1 import parse_spec
from thumbnail_operator.builders.credentials import ensure_credentials

PLACEMENT = ("nodeSelector", "tolerations", "affinity", "topologySpreadConstraints",
             "priorityClassName")
WORKLOADS = {
    "server": "demo-server", "worker": "demo-worker", "postgresql": "demo-postgresql",
    "redis": "demo-redis", "minio": "demo-minio",
}


def in_spec(component: str, scheduling: dict[str, Any]) -> dict[str, Any]:
    """A v1 spec setting one component's scheduling (where v1 keeps it)."""
    where = {
        "server": lambda s: {"server": {"scheduling": s}},
        "worker": lambda s: {"workers": {"scheduling": s}},
        "postgresql": lambda s: {"postgresql": {"managed": {"scheduling": s}}},
        "redis": lambda s: {"redis": {"managed": {"scheduling": s}}},
        "minio": lambda s: {"objectStorage": {"managed": {"scheduling": s}}},
    }
    return where[component](copy.deepcopy(scheduling))


def selector(component: str) -> dict[str, str]:
    return {c.LABEL_NAME: c.APP_NAME, c.LABEL_INSTANCE: "demo", c.LABEL_COMPONENT: component}


def test_server_and_workers_spread_over_nodes_by_default() -> None:
    pods = pod_specs(desired())
    for component in ("server", "worker"):
        assert pods[WORKLOADS[component]]["topologySpreadConstraints"] == [{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector(component)},
            "matchLabelKeys": ["pod-template-hash"],
        }], component
    for component in ("postgresql", "redis", "minio"):  # one pod each: nothing to spread
        assert not set(PLACEMENT) & pods[WORKLOADS[component]].keys(), component
    assert not set(PLACEMENT) & next(
        pod for name, pod in pods.items() if name.startswith("demo-bucket-init-")).keys()


def test_the_default_spread_selects_the_deployments_own_pods() -> None:
    children = by_name(desired())
    for name in ("demo-server", "demo-worker"):
        deployment = children[("Deployment", name)]
        (spread,) = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert spread["labelSelector"] == deployment["spec"]["selector"]
        # pod-template-hash is not a selector key (the API server refuses keys in both)
        assert not set(spread["matchLabelKeys"]) & spread["labelSelector"]["matchLabels"].keys()


@pytest.mark.parametrize("component", ["server", "worker"])
def test_an_empty_spread_list_turns_the_default_off(component: str) -> None:
    pods = pod_specs(desired(in_spec(component, {"topologySpreadConstraints": []})))
    assert "topologySpreadConstraints" not in pods[WORKLOADS[component]]
    other = "worker" if component == "server" else "server"
    assert "topologySpreadConstraints" in pods[WORKLOADS[other]]


@pytest.mark.parametrize("component", list(WORKLOADS))
def test_scheduling_is_rendered_into_the_components_pod_template(component: str) -> None:
    pod = pod_specs(desired(in_spec(component, SCHEDULING)))[WORKLOADS[component]]
    assert pod["nodeSelector"] == SCHEDULING["nodeSelector"]
    assert pod["tolerations"] == SCHEDULING["tolerations"]
    assert pod["affinity"] == SCHEDULING["affinity"]
    assert pod["priorityClassName"] == "media-high"
    # Given in full (labelSelector too): passed through as it is.
    assert pod["topologySpreadConstraints"] == SCHEDULING["topologySpreadConstraints"]


@pytest.mark.parametrize("component", list(WORKLOADS))
def test_a_spread_without_label_selector_counts_the_components_pods(component: str) -> None:
    zone = {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule"}
    pod = pod_specs(desired(in_spec(component, {"topologySpreadConstraints": [zone]})))[
        WORKLOADS[component]]
    assert pod["topologySpreadConstraints"] == [
        {**zone, "labelSelector": {"matchLabels": selector(component)}}]


def test_only_set_fields_are_rendered() -> None:
    pod = pod_specs(desired(in_spec("redis", {"nodeSelector": {"disktype": "ssd"}})))[
        "demo-redis"]
    assert pod["nodeSelector"] == {"disktype": "ssd"}
    assert not {"tolerations", "affinity", "topologySpreadConstraints",
                "priorityClassName"} & pod.keys()


@pytest.mark.parametrize("component", list(WORKLOADS))
def test_a_scheduling_change_changes_only_that_components_workload(component: str) -> None:
    """Placement is in one pod template and not in the config hash: only that workload rolls
    (the bucket-init Job keeps its name, no ConfigMap, Secret or other workload changes)."""
    credentials = ensure_credentials(parse_spec({}), None)
    before = desired(credentials=credentials)
    after = desired(in_spec(component, SCHEDULING), credentials=credentials)
    assert after.config_hash == before.config_hash
    old, new = by_name(before), by_name(after)
    assert old.keys() == new.keys()
    differ = {key for key in old if old[key] != new[key]}
    kind = "StatefulSet" if component in ("postgresql", "minio") else "Deployment"
    assert differ == {(kind, WORKLOADS[component])}
    # ... and within it, only the pod spec and the applied-hash annotation.
    key = (kind, WORKLOADS[component])
    was, now = old[key]["spec"], new[key]["spec"]
    assert was["template"]["metadata"] == now["template"]["metadata"]  # same config hash
    assert {k: v for k, v in was.items() if k != "template"} == {
        k: v for k, v in now.items() if k != "template"}
