"""docs/deployment.md only names things that exist: make targets, files, CRD fields."""

from __future__ import annotations

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
