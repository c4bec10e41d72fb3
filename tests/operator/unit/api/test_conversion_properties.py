"""Property tests: round trips over schema-generated objects of both versions are identities."""

from __future__ import annotations

import copy
import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thumbnail_operator.api.conversion import (
    V1,
    V1_EXTRAS,
    V1ALPHA1,
    V1ALPHA1_EXTRAS,
    to_v1,
    to_v1alpha1,
)
from thumbnail_operator.api.schema import v1, v1alpha1

from .schema_tools import apply_defaults, objects, prune, with_preset_keys

ALPHA_SCHEMA = with_preset_keys(v1alpha1.version_schema())
V1_SCHEMA = v1.version_schema()

PROFILE = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_label = st.text(alphabet=string.ascii_lowercase + string.digits + "-./", min_size=1,
                 max_size=20)
metadata = st.fixed_dictionaries(
    {"name": st.from_regex(r"^[a-z][a-z0-9-]{0,10}$", fullmatch=True)},
    optional={
        "namespace": st.sampled_from(["default", "prod"]),
        "uid": st.uuids().map(str),
        "resourceVersion": st.integers(1, 10**6).map(str),
        "generation": st.integers(1, 100),
        "labels": st.dictionaries(_label, _label, min_size=1, max_size=3),
        "annotations": st.dictionaries(
            _label.filter(lambda k: k not in (V1_EXTRAS, V1ALPHA1_EXTRAS)),
            st.text(max_size=20), min_size=1, max_size=3),
    },
)


def resources(schema: dict[str, Any], api_version: str) -> st.SearchStrategy[dict[str, Any]]:
    spec_status = schema["properties"]
    return st.fixed_dictionaries(
        {"apiVersion": st.just(api_version), "kind": st.just("ThumbnailService"),
         "metadata": metadata},
        optional={"spec": objects(spec_status["spec"]),
                  "status": objects(spec_status["status"])},
    )


alpha_objects = resources(ALPHA_SCHEMA, V1ALPHA1)
v1_objects = resources(V1_SCHEMA, V1)


@PROFILE
@given(alpha_objects)
def test_v1alpha1_to_v1_and_back_is_the_identity(alpha: dict[str, Any]) -> None:
    original = copy.deepcopy(alpha)
    beta = to_v1(alpha)
    assert alpha == original  # pure: the input is untouched
    assert beta["apiVersion"] == V1
    assert to_v1alpha1(beta) == alpha


@PROFILE
@given(v1_objects)
def test_v1_to_v1alpha1_and_back_is_the_identity(beta: dict[str, Any]) -> None:
    alpha = to_v1alpha1(beta)
    assert alpha["apiVersion"] == V1ALPHA1
    assert to_v1(alpha) == beta


@PROFILE
@given(alpha_objects)
def test_objects_carrying_extras_round_trip_too(alpha: dict[str, Any]) -> None:
    beta = to_v1(alpha)  # may carry the v1alpha1-extras annotation
    assert to_v1(to_v1alpha1(beta)) == beta
    again = to_v1alpha1(beta)
    assert to_v1alpha1(to_v1(again)) == again


@PROFILE
@given(alpha_objects)
def test_conversion_output_survives_pruning(alpha: dict[str, Any]) -> None:
    """Nothing lands where the target schema has no field (the API server would drop it)."""
    beta = to_v1(alpha)
    assert prune(V1_SCHEMA, beta) == beta
    back = to_v1alpha1(beta)
    assert prune(ALPHA_SCHEMA, back) == back


@PROFILE
@given(v1_objects)
def test_v1_output_survives_pruning(beta: dict[str, Any]) -> None:
    alpha = to_v1alpha1(beta)
    assert prune(ALPHA_SCHEMA, alpha) == alpha


@PROFILE
@given(alpha_objects)
def test_defaulting_commutes_with_conversion(alpha: dict[str, Any]) -> None:
    """Defaults applied before or after converting give the same spec, so reading an object
    in the other version (the API server defaults it there) and writing it back is a no-op."""
    converted_then_defaulted = apply_defaults(V1_SCHEMA, to_v1(alpha))
    defaulted_then_converted = to_v1(apply_defaults(ALPHA_SCHEMA, alpha))
    assert converted_then_defaulted.get("spec") == defaulted_then_converted.get("spec")


@PROFILE
@given(v1_objects)
def test_defaulting_commutes_with_conversion_from_v1(beta: dict[str, Any]) -> None:
    converted_then_defaulted = apply_defaults(ALPHA_SCHEMA, to_v1alpha1(beta))
    defaulted_then_converted = to_v1alpha1(apply_defaults(V1_SCHEMA, beta))
    assert converted_then_defaulted.get("spec") == defaulted_then_converted.get("spec")
