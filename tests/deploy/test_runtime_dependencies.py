"""The images install `thumbnail-platform[service]` (and `[operator]`) and nothing else: every
third-party module the shipped code imports must come from those extras, not from the dev
tools that happen to be in the test environment. (A webhook module importing httpx, then a
dev-only dependency, crash-looped the worker's sweeper on the real node.)"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"service": ROOT / "service" / "thumbnail_service",
            "operator": ROOT / "operator" / "thumbnail_operator"}


def _imported_top_levels(package: Path) -> set[str]:
    names: set[str] = set()
    for source in package.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {package.name, "__future__"}


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _closure(extra: str) -> set[str]:
    """The distributions `thumbnail-platform[extra]` installs, transitively (the project's
    own requirements from pyproject.toml, theirs from the installed metadata)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"][extra]]
    seen: set[str] = set()
    todo = [_name(r) for r in wanted]
    while todo:
        name = todo.pop()
        if name in seen or name == "thumbnail-platform":
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        # Their own extras are not installed unless asked for (uvicorn[standard] is, below).
        todo += [_name(r) for r in requires if "extra ==" not in r]
    if extra == "service":  # uvicorn[standard], dramatiq[redis]: extras the service asks for
        todo = [_name(r) for dist in ("uvicorn", "dramatiq") for r in metadata.requires(dist) or []
                if 'extra == "standard"' in r or 'extra == "redis"' in r]
        seen |= set(todo)
    return seen


@pytest.mark.parametrize("extra", sorted(PACKAGES))
def test_shipped_code_imports_only_what_its_extra_installs(extra: str) -> None:
    providers = metadata.packages_distributions()
    installed = _closure(extra)
    missing = {
        module: sorted({d.lower().replace("_", "-") for d in providers.get(module, [module])})
        for module in _imported_top_levels(PACKAGES[extra])
        if not {d.lower().replace("_", "-") for d in providers.get(module, [module])} & installed
    }
    assert not missing, (f"imported by {extra}/ but not installed by thumbnail-platform[{extra}]"
                         f" (add them to pyproject.toml): {missing}")
