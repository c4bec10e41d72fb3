"""Containment check between desired and observed objects."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from thumbnail_operator.controller.drift import (
    describe_extras,
    drifted_paths,
    quantity_value,
    removal_patch,
    unexpected_fields,
)

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


# -- additions by others where only the operator decides ----------------------------------


def _deployment(pod: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "Deployment", "spec": {"template": {"spec": pod}}}


DESIRED_POD = {
    "securityContext": {"runAsNonRoot": True},
    "containers": [{
        "name": "server", "image": "img", "imagePullPolicy": "IfNotPresent",
        "envFrom": [{"configMapRef": {"name": "cfg"}}],
        "env": [{"name": "A", "value": "1"}],
        "securityContext": {"readOnlyRootFilesystem": True},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }],
    "volumes": [{"name": "tmp", "emptyDir": {}}],
}


def _as_served(pod: dict[str, Any]) -> dict[str, Any]:
    """What the API server returns: the same plus its defaults."""
    served = copy.deepcopy(pod)
    served.update(restartPolicy="Always", terminationGracePeriodSeconds=30,
                  dnsPolicy="ClusterFirst", schedulerName="default-scheduler")
    for container in served["containers"]:
        container.update(terminationMessagePath="/dev/termination-log",
                         terminationMessagePolicy="File", resources={})
    return served


def test_api_server_defaults_are_not_unexpected() -> None:
    served = _as_served(DESIRED_POD)
    assert unexpected_fields(_deployment(DESIRED_POD), _deployment(served)) == []


def test_hand_added_env_command_sidecar_and_pod_fields_are_unexpected() -> None:
    served = _as_served(DESIRED_POD)
    container = served["containers"][0]
    container["env"].append({"name": "THUMBNAIL_AUTH_ENABLED", "value": "false"})
    container["envFrom"].append({"secretRef": {"name": "other"}})
    container["command"] = ["sh"]
    container["securityContext"]["privileged"] = True
    served["containers"].append({"name": "sidecar", "image": "x"})
    served["hostNetwork"] = True
    served["serviceAccountName"] = "admin"
    served["dnsPolicy"] = "None"  # a defaulted field with another value
    extras = unexpected_fields(_deployment(DESIRED_POD), _deployment(served))
    assert sorted(describe_extras(extras)) == sorted([
        "containers.0.env[THUMBNAIL_AUTH_ENABLED]", "containers.0.envFrom.1",
        "containers.0.command", "containers.0.securityContext.privileged",
        "containers[sidecar]", "hostNetwork", "serviceAccountName", "dnsPolicy",
    ])


def test_removal_patch_removes_later_list_items_first_and_tests_each() -> None:
    served = _as_served(DESIRED_POD)
    env = served["containers"][0]["env"]
    env += [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]
    patch = removal_patch(unexpected_fields(_deployment(DESIRED_POD), _deployment(served)))
    removed = [op["path"] for op in patch if op["op"] == "remove"]
    assert removed == ["/spec/template/spec/containers/0/env/2",
                       "/spec/template/spec/containers/0/env/1"]
    assert [op["op"] for op in patch] == ["test", "remove", "test", "remove"]


def test_config_data_keys_added_by_hand_are_unexpected() -> None:
    desired = {"kind": "Secret", "data": {"A": "x"}}
    observed = {"kind": "Secret", "data": {"A": "x", "THUMBNAIL_AUTH_ENABLED": "ZmFsc2U="}}
    assert unexpected_fields(desired, observed) == [
        ("/data/THUMBNAIL_AUTH_ENABLED", "ZmFsc2U=")]
