"""What the builders render does not depend on the version the resource was written in.

The builders read only the v1 hub. An object written in v1alpha1 reaches them converted;
for any such object the children equal those of the same object written natively in v1, and
moving the owner reference from v1alpha1 to v1 (the storage-version upgrade) changes neither
the config hash nor the applied-hash annotation (a changed annotation would bump every
Deployment's generation). That the hub refactor itself changed no rendering was checked once
against the previous code over 801 schema-generated objects (docs/operator.md).
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings

from tests.operator.unit.objects import full_alpha, full_v1
from thumbnail_operator import constants as c
from thumbnail_operator.api.conversion import to_v1
from thumbnail_operator.api.v1 import parse_spec
from thumbnail_operator.builders import Owner, build_desired_state
from thumbnail_operator.builders.credentials import ensure_credentials

from .schema_tools import apply_defaults, objects
from .test_conversion_properties import ALPHA_SCHEMA

CREDENTIALS = ensure_credentials(parse_spec({}), {"database-password": "p"})


def render(cr: dict[str, Any], owner_version: str = c.API_VERSION) -> Any:
    assert cr["apiVersion"] == c.API_VERSION, "the builders read the v1 hub only"
    spec = parse_spec(cr.get("spec"))
    owner = Owner("shop", "prod", "uid-1", owner_version)
    external = {"db": {"password": "x"}, "s3": {"accessKey": "a", "secretKey": "b"}}
    return build_desired_state(owner, spec, ensure_credentials(spec, CREDENTIALS), external)


def without_owner_version(children: list[dict[str, Any]]) -> list[dict[str, Any]]:
    children = copy.deepcopy(children)
    for child in children:
        for ref in child["metadata"].get("ownerReferences", []):
            ref.pop("apiVersion")
    return children


def assert_owner_version_is_invisible(alpha: dict[str, Any]) -> None:
    """Children owned as v1alpha1 (before the storage upgrade) and as v1 (after) differ only
    in the owner reference's apiVersion, which no hash sees."""
    before, after = render(to_v1(alpha), c.DEPRECATED_API_VERSION), render(to_v1(alpha))
    assert after.config_hash == before.config_hash
    assert without_owner_version(after.children) == without_owner_version(before.children)
    assert {ref["apiVersion"] for child in after.children
            for ref in child["metadata"].get("ownerReferences", [])} == {c.API_VERSION}


def test_the_full_object_renders_the_same_children_in_both_versions() -> None:
    assert render(to_v1(full_alpha())).children == render(full_v1()).children
    assert_owner_version_is_invisible(full_alpha())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects(ALPHA_SCHEMA["properties"]["spec"]))
def test_any_defaulted_spec_renders_the_same_children(spec: dict[str, Any]) -> None:
    alpha = apply_defaults(ALPHA_SCHEMA, {
        "apiVersion": c.DEPRECATED_API_VERSION, "kind": c.KIND,
        "metadata": {"name": "shop", "namespace": "prod", "uid": "uid-1"}, "spec": spec,
    })
    assert_owner_version_is_invisible(alpha)
