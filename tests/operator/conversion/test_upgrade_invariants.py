"""What the builders render does not depend on the version the resource was read in.

The upgrade must restart nothing: for any resource, the children built from its v1 form
(the operator after the upgrade) equal those built from its v1alpha1 form (before), except
the owner reference's apiVersion — which neither the config hash nor the applied-hash
annotation sees (a changed annotation would bump every Deployment's generation).
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings

from thumbnail_operator import constants as c
from thumbnail_operator.builders import Owner, build_desired_state
from thumbnail_operator.conversion import to_v1
from thumbnail_operator.conversion.options import builder_spec
from thumbnail_operator.credentials import ensure_credentials
from thumbnail_operator.spec import parse_spec

from .schema_tools import apply_defaults, objects
from .test_conversion_properties import ALPHA_SCHEMA
from .test_conversion_unit import full_alpha

CREDENTIALS = ensure_credentials(parse_spec({}), {"database-password": "p"})


def render(cr: dict[str, Any]) -> Any:
    spec = parse_spec(builder_spec(cr))
    owner = Owner("shop", "prod", "uid-1", cr["apiVersion"])
    external = {"db": {"password": "x"}, "s3": {"accessKey": "a", "secretKey": "b"}}
    return build_desired_state(owner, spec, ensure_credentials(spec, CREDENTIALS), external)


def without_owner_version(children: list[dict[str, Any]]) -> list[dict[str, Any]]:
    children = copy.deepcopy(children)
    for child in children:
        for ref in child["metadata"].get("ownerReferences", []):
            ref.pop("apiVersion")
    return children


def assert_same_children(alpha: dict[str, Any]) -> None:
    before, after = render(alpha), render(to_v1(alpha))
    assert after.config_hash == before.config_hash
    assert without_owner_version(after.children) == without_owner_version(before.children)
    assert {ref["apiVersion"] for child in after.children
            for ref in child["metadata"]["ownerReferences"]} == {c.STORAGE_API_VERSION}


def test_the_full_object_renders_the_same_children_in_both_versions() -> None:
    assert_same_children(full_alpha())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects(ALPHA_SCHEMA["properties"]["spec"]))
def test_any_defaulted_spec_renders_the_same_children(spec: dict[str, Any]) -> None:
    alpha = apply_defaults(ALPHA_SCHEMA, {
        "apiVersion": c.API_VERSION, "kind": c.KIND,
        "metadata": {"name": "shop", "namespace": "prod", "uid": "uid-1"}, "spec": spec,
    })
    assert_same_children(alpha)
