"""The CRD file is generated, structural, documented, and agrees with the typed spec model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from thumbnail_operator.api.conversion import V1ALPHA1, to_v1
from thumbnail_operator.api.crd import (
    CRD_FILE,
    custom_resource_definition,
    generated_files,
    render,
)
from thumbnail_operator.api.v1 import DEFAULTS, parse_spec

VERSIONS = ("v1alpha1", "v1")


def schema(version: str = "v1") -> dict[str, Any]:
    versions = {v["name"]: v for v in custom_resource_definition()["spec"]["versions"]}
    return dict(versions[version]["schema"]["openAPIV3Schema"])


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}[*]")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")


def apply_defaults(node: dict[str, Any], value: Any) -> Any:
    """Structural defaulting as the API server does it (defaults, then recurse)."""
    if node.get("type") != "object" or not isinstance(value, dict):
        return value
    result = dict(value)
    for name, child in node.get("properties", {}).items():
        if name not in result and "default" in child:
            result[name] = child["default"]
        if name in result:
            result[name] = apply_defaults(child, result[name])
    return result


def test_checked_in_file_is_generated_from_the_schema() -> None:
    assert CRD_FILE.read_text() == render(), "run: python -m thumbnail_operator.api.crd"
    for path, text in generated_files().items():
        assert path.read_text() == text, f"{path} is stale: python -m thumbnail_operator.api.crd"
    assert yaml.safe_load(CRD_FILE.read_text()) == custom_resource_definition()


@pytest.mark.parametrize("version", VERSIONS)
def test_every_spec_and_status_field_is_described_and_typed(version: str) -> None:
    root = schema(version)
    for path, node in walk(root):
        if path.startswith(".metadata") or path in ("", ".apiVersion", ".kind"):
            continue
        assert node.get("description"), f"{path} has no description"
        assert node.get("type"), f"{path} has no type"
        if node["type"] == "string" and "enum" not in node and "format" not in node:
            assert "maxLength" in node, f"{path} has no maxLength (CEL cost)"
        if node["type"] == "array":
            assert "maxItems" in node, path


def test_schema_defaults_are_the_typed_model_defaults() -> None:
    """The API server's defaulting of an empty spec, in either version, gives `DEFAULTS`."""
    v1 = apply_defaults(schema("v1")["properties"]["spec"], {})
    assert parse_spec(v1) == DEFAULTS
    alpha = apply_defaults(schema("v1alpha1")["properties"]["spec"], {})
    converted = to_v1({"apiVersion": V1ALPHA1, "kind": "ThumbnailService",
                       "metadata": {"name": "x"}, "spec": alpha})
    assert parse_spec(converted["spec"]) == DEFAULTS


def test_a_changed_model_default_reaches_the_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    """The schemas read their defaults from the model: there is no second copy to forget."""
    import importlib

    from thumbnail_operator.api import v1 as model
    from thumbnail_operator.api.schema import v1 as v1_schema
    from thumbnail_operator.api.schema import v1alpha1 as alpha_schema

    changed = DEFAULTS.model_copy(update={
        "workers": DEFAULTS.workers.model_copy(update={"replicas": 7})})
    monkeypatch.setattr(model, "DEFAULTS", changed)
    try:
        alpha = importlib.reload(alpha_schema)
        beta = importlib.reload(v1_schema)
        assert alpha.WORKER["properties"]["replicas"]["default"] == 7
        assert beta.WORKERS["properties"]["replicas"]["default"] == 7
    finally:
        monkeypatch.undo()
        importlib.reload(alpha_schema)
        importlib.reload(v1_schema)


def test_resource_shape_scale_and_columns() -> None:
    crd = custom_resource_definition()
    spec = crd["spec"]
    assert (spec["group"], spec["names"]["kind"], spec["scope"]) == (
        "thumbnails.platform.dev", "ThumbnailService", "Namespaced")
    assert spec["names"]["shortNames"] == ["tns"]
    # v1 is stored, v1alpha1 still served but deprecated (issue 6), converted by webhook.
    alpha, beta = spec["versions"]
    assert alpha["name"] == "v1alpha1" and alpha["served"] and not alpha["storage"]
    assert alpha["deprecated"] and "deprecated" in alpha["deprecationWarning"]
    assert beta["name"] == "v1" and beta["served"] and beta["storage"]
    assert spec["conversion"]["strategy"] == "Webhook"
    assert alpha["subresources"]["scale"]["specReplicasPath"] == ".spec.worker.replicas"
    assert beta["subresources"]["scale"]["specReplicasPath"] == ".spec.workers.replicas"
    for version in (alpha, beta):
        columns = [col["name"] for col in version["additionalPrinterColumns"]]
        assert columns == ["Ready", "Server", "Workers", "Live", "Oldest Queued", "Backlog",
                           "Jobs/min", "Last Backup", "Endpoint", "Age"]


def test_the_crd_fits_in_a_client_side_apply() -> None:
    """`kubectl apply` (client-side) records the whole object in an annotation, which the API
    server caps at 256 KiB: a larger CRD installs only with --server-side. The scheduling
    schema, repeated for five components in two versions, is what grows it most."""
    import json

    size = len(json.dumps(custom_resource_definition(), separators=(",", ":")))
    assert size < 256 * 1024 - 16 * 1024, size  # some room left for the next fields
