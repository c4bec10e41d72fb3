"""Containment check between desired and observed objects."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from thumbnail_operator.controller.drift import drifted_paths, quantity_value

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=3),
    max_leaves=20,
)


@given(JSON)
def test_an_object_contains_itself(value: Any) -> None:
    assert drifted_paths(value, value) == []


@given(st.dictionaries(st.text(max_size=4), JSON, max_size=4), st.text(min_size=1, max_size=4),
       JSON)
def test_extra_observed_fields_are_not_drift(desired: dict[str, Any], key: str, extra: Any) -> None:
    observed = {**desired}
    if key not in observed:
        observed[key] = extra
    assert drifted_paths(desired, observed) == []


def test_changed_missing_and_resized_fields_are_drift() -> None:
    desired = {"spec": {"replicas": 1, "ports": [{"port": 80}], "labels": {"a": "b"}}}
    assert drifted_paths(desired, {"spec": {"replicas": 5, "ports": [{"port": 80}],
                                            "labels": {"a": "b"}}}) == [".spec.replicas"]
    assert drifted_paths(desired, {"spec": {"replicas": 1, "labels": {"a": "b"}}}) == [
        ".spec.ports"]
    assert drifted_paths(desired, {"spec": {"replicas": 1, "ports": [], "labels": {}}}) == [
        ".spec.ports", ".spec.labels.a"]


def test_empty_desired_values_match_absent_fields() -> None:
    assert drifted_paths({"env": [], "annotations": {}}, {}) == []


def test_quantities_compare_by_value_under_resources_only() -> None:
    desired = {"resources": {"requests": {"cpu": "0.5", "memory": "1Gi"}}}
    observed = {"resources": {"requests": {"cpu": "500m", "memory": "1024Mi"}}}
    assert drifted_paths(desired, observed) == []
    assert drifted_paths({"env": {"value": "0.5"}}, {"env": {"value": "500m"}}) == [".env.value"]
    assert quantity_value("2k") == 2000
    assert quantity_value("nonsense") is None


def test_named_lists_match_by_name_and_tolerate_foreign_items() -> None:
    desired = {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    foreign = {"env": [{"name": "B", "value": "2"}, {"name": "X", "value": "9"},
                       {"name": "A", "value": "1"}]}
    assert drifted_paths(desired, foreign) == []
    assert drifted_paths(desired, {"env": [{"name": "A", "value": "1"}]}) == [".env[B]"]
    assert drifted_paths(desired, {"env": [{"name": "A", "value": "0"},
                                           {"name": "B", "value": "2"}]}) == [".env[A].value"]


def test_scalar_lists_compare_exactly() -> None:
    assert drifted_paths({"command": ["a", "b"]}, {"command": ["b", "a"]}) == [".command[0]",
                                                                             ".command[1]"]
    assert drifted_paths({"command": ["a"]}, {"command": ["a", "b"]}) == [".command"]
