"""PodDisruptionBudgets: only for the server and workers, only with two replicas or more."""

from __future__ import annotations

from typing import Any

import pytest

from tests.operator.unit.helpers import OWNER, by_name, desired
from thumbnail_operator import constants as c

PDB = "PodDisruptionBudget"


def budgets(spec: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    return {name: obj for (kind, name), obj in by_name(desired(spec)).items() if kind == PDB}


@pytest.mark.parametrize(("replicas", "expected"), [(0, False), (1, False), (2, True), (7, True)])
@pytest.mark.parametrize(("group", "name"), [("server", "demo-server"), ("workers", "demo-worker")])
def test_a_budget_exists_exactly_from_two_replicas(
    group: str, name: str, replicas: int, expected: bool
) -> None:
    other = "workers" if group == "server" else "server"
    found = budgets({group: {"replicas": replicas}, other: {"replicas": 1}})
    assert (name in found) is expected
    assert len(found) == int(expected)  # the other component (one replica) has none


@pytest.mark.parametrize(("most", "expected"), [(1, False), (2, True)])
def test_autoscaled_workers_have_a_budget_when_they_may_grow_to_two(
    most: int, expected: bool
) -> None:
    """Whatever runs now (the autoscaler's size is not the spec's): a budget that followed
    the load would be created and pruned with it."""
    spec = {"workers": {"replicas": 0, "autoscaling": {"maxReplicas": most}}}
    assert ("demo-worker" in budgets(spec)) is expected


def test_the_default_spec_protects_the_two_workers_only() -> None:
    assert set(budgets()) == {"demo-worker"}  # one server by default: nothing to protect


@pytest.mark.parametrize(("component", "name"), [("server", "demo-server"),
                                                 ("worker", "demo-worker")])
def test_a_budget_selects_exactly_its_deployments_pods(component: str, name: str) -> None:
    children = by_name(desired({"server": {"replicas": 3}, "workers": {"replicas": 4}}))
    budget = children[(PDB, name)]
    deployment = children[("Deployment", name)]
    selector = budget["spec"]["selector"]
    # The Deployment's immutable selector, which its pod template labels satisfy.
    assert selector == deployment["spec"]["selector"]
    assert selector["matchLabels"] == {
        c.LABEL_NAME: c.APP_NAME, c.LABEL_INSTANCE: "demo", c.LABEL_COMPONENT: component,
    }
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector["matchLabels"].items() <= template_labels.items()
    others = [o for (kind, n), o in children.items() if kind in ("Deployment", "StatefulSet")
              and n != name]
    for other in others:  # selects no other component's pods
        labels = other["spec"]["template"]["metadata"]["labels"]
        assert not selector["matchLabels"].items() <= labels.items(), other["metadata"]["name"]


def test_a_budget_lets_one_pod_go_at_a_time_and_never_counts_unready_ones() -> None:
    budget = budgets({"server": {"replicas": 2}})["demo-server"]
    assert budget["apiVersion"] == "policy/v1"
    assert budget["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in budget["spec"]
    assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_a_budget_is_owned_and_labelled_like_every_child() -> None:
    budget = budgets({"workers": {"replicas": 3}})["demo-worker"]
    meta = budget["metadata"]
    assert meta["namespace"] == "media"
    assert meta["ownerReferences"] == [OWNER.reference()]  # deleted with the resource
    assert meta["labels"][c.LABEL_MANAGED_BY] == c.FIELD_MANAGER
    assert meta["labels"][c.LABEL_COMPONENT] == "worker"
    assert c.APPLIED_HASH_ANNOTATION in meta["annotations"]


def test_no_budget_for_the_single_pod_data_stores() -> None:
    spec = {"server": {"replicas": 5}, "workers": {"replicas": 5}}
    components = {obj["metadata"]["labels"][c.LABEL_COMPONENT]
                  for obj in budgets(spec).values()}
    assert components == {"server", "worker"}  # never postgresql, redis or minio


def test_replicas_change_only_the_budget_of_the_scaled_component() -> None:
    before = by_name(desired({"server": {"replicas": 2}, "workers": {"replicas": 2}}))
    after = by_name(desired({"server": {"replicas": 2}, "workers": {"replicas": 9}}))
    assert before[(PDB, "demo-server")] == after[(PDB, "demo-server")]
    assert before[(PDB, "demo-worker")] == after[(PDB, "demo-worker")]  # maxUnavailable: 1
