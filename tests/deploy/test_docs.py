"""docs/deployment.md only names things that exist: make targets, files, CRD fields."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.deploy.support import CRDS, ROOT, load_documents

DOC = ROOT / "docs" / "deployment.md"


def _make_targets() -> set[str]:
    text = "\n".join(
        p.read_text() for p in [ROOT / "Makefile", *sorted((ROOT / "mk").glob("*.mk"))]
    )
    return set(re.findall(r"^([a-z0-9-]+):", text, flags=re.M))


def test_make_targets_exist() -> None:
    mentioned = set(re.findall(r"\bmake ((?:k8s-[a-z-]+|e2e|test|tools)\b)", DOC.read_text()))
    assert mentioned, "the guide mentions no make target?"
    assert mentioned <= _make_targets(), mentioned - _make_targets()


def test_paths_exist() -> None:
    pattern = r"(?<![\w/.])((?:scripts|manifests|images|crds|tests|docs)/[\w./-]+)"
    paths = set(re.findall(pattern, DOC.read_text()))
    missing = sorted(p for p in paths if not (ROOT / p.rstrip(".")).exists())
    assert not missing, missing


def _expand(path: str) -> list[str]:
    """Shell-style brace expansion, nested: `a.{b,c.{d,e}}` -> a.b, a.c.d, a.c.e."""
    start = path.find("{")
    if start < 0:
        return [path]
    depth, alternatives, begin = 0, [], start + 1
    for index in range(start, len(path)):
        char = path[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                alternatives.append(path[begin:index])
                head, tail = path[:start], path[index + 1 :]
                return [e for alt in alternatives for e in _expand(head + alt + tail)]
        elif char == "," and depth == 1:
            alternatives.append(path[begin:index])
            begin = index + 1
    raise ValueError(f"unbalanced braces in {path!r}")


def _node(schema: dict[str, Any], dotted: str) -> dict[str, Any]:
    for part in dotted.split("."):
        schema = schema["properties"][part]
    return schema


def _documented_default(node: dict[str, Any]) -> str | None:
    """A schema default as the table writes it (`true`, `8000`, `postgres:16`)."""
    if "default" in node and not isinstance(node["default"], dict | list):
        return json.dumps(node["default"]).strip('"')
    properties = node.get("properties") or {}
    if {"repository", "tag"} <= properties.keys():  # an image
        return f"{properties['repository']['default']}:{properties['tag']['default']}"
    return None


def _has(schema: dict[str, Any], dotted: str) -> bool:
    node = schema
    for part in dotted.split("."):
        props = node.get("properties") or {}
        if part not in props:
            return False
        node = props[part]
    return True


def test_field_table_matches_the_crd() -> None:
    crd = load_documents(CRDS / "thumbnailservices.yaml")[0]
    # The field table documents the storage version, the one the samples use.
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    table = DOC.read_text().split("| field | default | meaning |", 1)[1].split("\n\n", 1)[0]
    fields = [
        re.findall(r"`([^`]+)`", row.split("|")[1])
        for row in table.splitlines()[2:]
        if row.startswith("|")
    ]
    checked = 0
    for cell in fields:
        base = cell[0]
        for expanded in _expand(base):
            assert _has(spec, expanded), f"docs/deployment.md names {expanded}, not in the CRD"
            checked += 1
        for relative in cell[1:]:  # `.tag` / `.pullPolicy`: siblings of the first path
            if relative.startswith("."):
                for expanded in _expand(base.rsplit(".", 1)[0] + relative):
                    assert _has(spec, expanded), expanded
                    checked += 1
    assert checked > 30, checked


def test_field_table_defaults_are_the_crd_defaults() -> None:
    """The default column says what the API server fills in (the CRD takes its defaults from
    the operator's typed model, `thumbnail_operator.api.v1.DEFAULTS`)."""
    crd = load_documents(CRDS / "thumbnailservices.yaml")[0]
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    table = DOC.read_text().split("| field | default | meaning |", 1)[1].split("\n\n", 1)[0]
    compared = 0
    for row in table.splitlines()[2:]:
        cells = row.split("|")
        paths = re.findall(r"`([^`]+)`", cells[1])
        if "{" in paths[0]:
            continue  # an object with several fields: described in words
        base = paths[0].rsplit(".", 1)[0]
        paths = [paths[0], *(base + rel for rel in paths[1:] if rel.startswith("."))]
        values = re.findall(r"`([^`]+)`", cells[2])
        if len(values) != len(paths):
            continue  # e.g. resources, written as prose
        for path, value in zip(paths, values, strict=True):
            assert _documented_default(_node(spec, path)) == value, path
            compared += 1
    assert compared > 25, compared
