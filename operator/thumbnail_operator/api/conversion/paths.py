"""Reading and writing nested dicts by key paths (tuples of keys; keys may contain dots)."""

from __future__ import annotations

from typing import Any

Path = tuple[str, ...]
Obj = dict[str, Any]

_MISSING = object()


def lookup(node: Any, path: Path) -> Any:
    """The value at `path`, or `_MISSING` (compare with `is MISSING`)."""
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return _MISSING
        node = node[key]
    return node


MISSING = _MISSING


def put(node: Obj, path: Path, value: Any) -> bool:
    """Set `path` to `value`, creating intermediate dicts; False if a non-dict is in the way."""
    for key in path[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            return False
        node = child
    node[path[-1]] = value
    return True


def dotted(path: Path) -> str:
    return ".".join(path)
