"""The CEL rules of both versions: one set of rules, the same in both, on fields that exist.

What the rules accept and refuse is tested against a real API server
(tests/operator/test_validation_cluster.py); here: that they cannot drift apart between the
versions, that the status message they read is the one the reconciler writes, and that the
regular expressions they use say what their names promise (Python's `re` and RE2 agree on
these constructs).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from thumbnail_operator.api.conversion.mapping import MOVES
from thumbnail_operator.api.schema import v1, v1alpha1
from thumbnail_operator.api.schema.autoscaling import FIXED_WHILE_AUTOSCALED
from thumbnail_operator.api.v1 import DEFAULTS, NOT_CREATED_MESSAGE, parse_spec
from thumbnail_operator.builders import Names
from thumbnail_operator.controller.status import components, workload_state

from .schema_tools import at

VERSIONS = {"v1alpha1": v1alpha1, "v1": v1}


def rules(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, str]]]:
    if isinstance(node, dict):
        for rule in node.get("x-kubernetes-validations", []):
            yield path, rule
        for key, child in node.items():
            if key != "x-kubernetes-validations":
                yield from rules(child, f"{path}/{key}")
    elif isinstance(node, list):
        for child in node:
            yield from rules(child, path)


def moved(dotted: str) -> str:
    """A v1alpha1 path where the conversion table puts it in v1."""
    parts = tuple(dotted.split("."))
    for move in MOVES:
        if parts[: len(move.alpha)] == move.alpha:
            return ".".join((*move.v1, *parts[len(move.alpha):]))
    raise AssertionError(f"{dotted} has no place in v1")


def test_the_immutable_fields_are_the_same_fields_in_both_versions() -> None:
    alpha, beta = v1alpha1.STATEFUL_SET_INPUTS, v1.STATEFUL_SET_INPUTS
    for field in alpha.__dataclass_fields__:
        assert moved(getattr(alpha, field)) == getattr(beta, field), field


def test_both_versions_have_the_same_root_rules_on_their_own_paths() -> None:
    alpha = v1alpha1.version_schema()["x-kubernetes-validations"]
    beta = v1.version_schema()["x-kubernetes-validations"]
    assert alpha == [*v1alpha1.NAME_RULES,
                     *v1alpha1.immutable_once_created(v1alpha1.STATEFUL_SET_INPUTS)]
    assert beta == [*v1alpha1.NAME_RULES, *v1alpha1.immutable_once_created(v1.STATEFUL_SET_INPUTS)]


@pytest.mark.parametrize("version", VERSIONS)
def test_the_rules_name_fields_that_exist(version: str) -> None:
    module = VERSIONS[version]
    schema = module.version_schema()
    inputs = module.STATEFUL_SET_INPUTS
    for field in inputs.__dataclass_fields__:
        dotted = getattr(inputs, field)
        path = tuple(dotted.split("."))
        node = at(schema, (*path, "message") if field.endswith("_status") else path)
        assert node["type"] in ("string", "boolean"), dotted
    for rule in schema["x-kubernetes-validations"]:
        if "fieldPath" in rule:
            at(schema, tuple(rule["fieldPath"].lstrip(".").split(".")))


@pytest.mark.parametrize("version", VERSIONS)
def test_every_rule_says_what_to_fix_and_only_root_rules_see_the_past(version: str) -> None:
    """A field-level `self == oldSelf` would freeze a field even while its StatefulSet does
    not exist; the transition rules are the root ones, which read the status too - and the
    one that keeps `kubectl scale` from writing a size the autoscaler would ignore."""
    workers = "/properties/spec/properties/" + ("worker" if version == "v1alpha1" else "workers")
    for path, rule in rules(VERSIONS[version].version_schema()):
        assert len(rule["message"]) > 20, rule
        if rule == FIXED_WHILE_AUTOSCALED:
            assert path == workers, path
        elif "oldSelf" in rule["rule"]:
            assert path == "", (path, rule)
            assert "oldSelf.?status.?components." in rule["rule"], rule


def test_the_status_message_the_rules_read_is_the_one_the_reconciler_writes() -> None:
    assert workload_state(None).message == NOT_CREATED_MESSAGE
    states = components(DEFAULTS, Names("x"), {}, "x-bucket-init")
    assert states["postgresql"].message == NOT_CREATED_MESSAGE
    assert states["objectStorage"].message == NOT_CREATED_MESSAGE
    external = parse_spec({"postgresql": {"mode": "External"}})
    assert components(external, Names("x"), {}, "j")["postgresql"].message != NOT_CREATED_MESSAGE


def full(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@pytest.mark.parametrize("value", [
    "postgres", "minio/minio", "localhost/thumbnail-postgresql", "ghcr.io/org/app",
    "registry.example.com:5000/team/app", "a__b", "a.b_c-d---e", "my-registry:443/mc.client",
    "10.0.0.1:5000/x", *(image.repository for image in (
        DEFAULTS.server.image, DEFAULTS.workers.image, DEFAULTS.postgresql.managed.image,
        DEFAULTS.redis.managed.image, DEFAULTS.object_storage.managed.image,
        DEFAULTS.object_storage.bucket_init.image, DEFAULTS.dependency_wait.image)),
])
def test_image_repositories_accepted(value: str) -> None:
    assert full(v1alpha1.IMAGE_REPOSITORY).search(value)


@pytest.mark.parametrize("value", [
    "Postgres", "postgres:16", "postgres@sha256:abc", " postgres", "postgres ", "team//app",
    "-app", "app-", "app_", "a___b", "https://quay.io/x", "/app", "app/", "host:port/app",
    "registry.example.com:5000",
])
def test_image_repositories_refused(value: str) -> None:
    assert not full(v1alpha1.IMAGE_REPOSITORY).search(value)


@pytest.mark.parametrize(("value", "ok"), [
    ("db", True), ("db.creds-1", True), ("a", True), ("1.2.3", True), ("a..b", False),
    ("a-.b", False), ("a.-b", False), ("-a", False), ("a-", False), ("A", False),
    ("a_b", False), (".a", False),
])
def test_dns_subdomain(value: str, ok: bool) -> None:
    assert bool(full(v1alpha1.DNS_SUBDOMAIN).search(value)) is ok


@pytest.mark.parametrize("port", [0, 65536, 70000, 99999, 100000])
def test_port_suffix_refuses_ports_out_of_range(port: int) -> None:
    assert not full(v1alpha1.PORT_SUFFIX).search(f"s3.example.com:{port}")


def test_port_suffix_accepts_every_port() -> None:
    pattern = full(v1alpha1.PORT_SUFFIX)
    assert all(pattern.search(f"h:{port}") for port in range(1, 65536))
    assert not pattern.search("h:01")
