"""Does an observed object already carry everything the operator wants in it?

The API server adds defaults (and other controllers add labels or annotations), so the test
is containment, not equality: every field the builder sets must be present with the same
value. This lets an idle operator skip writes entirely instead of sending no-op applies.
Containment cannot see a field the operator *stopped* setting; the builders' applied-hash
annotation (part of every desired object) covers that: a changed desired object never
contains in its previous self.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

# Quantities are normalised by the API server ("0.5" -> "500m"); compare them by value.
_QUANTITY_PARENTS = {"requests", "limits", "capacity"}
_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_SUFFIXES = {
    "": Decimal(1), "m": Decimal("0.001"), "k": Decimal(10**3), "M": Decimal(10**6),
    "G": Decimal(10**9), "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}


def quantity_value(text: str) -> Decimal | None:
    match = _QUANTITY.match(text)
    if not match or match.group(2) not in _SUFFIXES:
        return None
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2)]
    except InvalidOperation:
        return None


def _is_empty(value: Any) -> bool:
    return value is None or value == [] or value == {}


def drifted_paths(desired: Any, observed: Any, path: str = "") -> list[str]:
    """Paths where `observed` lacks or contradicts `desired` (empty list: nothing to do)."""
    if isinstance(desired, dict):
        if not isinstance(observed, dict):
            return [path or "."]
        found: list[str] = []
        for key, want in desired.items():
            child = f"{path}.{key}"
            if key not in observed:
                if not _is_empty(want):
                    found.append(child)
                continue
            found += drifted_paths(want, observed[key], child)
        return found
    if isinstance(desired, list):
        if not isinstance(observed, list):
            return [path]
        if _named(desired) and _named(observed):
            return _named_list_drift(desired, observed, path)
        if len(desired) != len(observed):
            return [path]
        found = []
        for index, (want, have) in enumerate(zip(desired, observed, strict=True)):
            found += drifted_paths(want, have, f"{path}[{index}]")
        return found
    if desired == observed:
        return []
    if _is_quantity_path(path) and isinstance(desired, str) and isinstance(observed, str):
        want_value, have_value = quantity_value(desired), quantity_value(observed)
        if want_value is not None and want_value == have_value:
            return []
    return [path]


def _named(items: list[Any]) -> bool:
    return all(isinstance(item, dict) and "name" in item for item in items)


def _named_list_drift(desired: list[Any], observed: list[Any], path: str) -> list[str]:
    """Lists keyed by `name` (containers, env, ports, volumes) merge like SSA does: items
    another field manager added are not ours to judge; every item of ours must match."""
    by_name = {item["name"]: item for item in observed}
    found: list[str] = []
    for item in desired:
        child = f"{path}[{item['name']}]"
        if item["name"] not in by_name:
            found.append(child)
        else:
            found += drifted_paths(item, by_name[item["name"]], child)
    return found


def _is_quantity_path(path: str) -> bool:
    parts = path.rsplit(".", 2)
    return len(parts) == 3 and parts[1] in _QUANTITY_PARENTS
