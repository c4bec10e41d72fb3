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
from collections.abc import Collection
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


# -- what others added: fields only the operator decides ----------------------------------
#
# Containment cannot see additions: an env entry set by hand (`kubectl set env`) overrides
# the operator's envFrom and would stay for good. In the places that decide what pods run
# and with which rights, anything the desired object does not have is unexpected, except
# what the API server itself fills in with its default value.

_POD_DEFAULTS: dict[str, Any] = {
    "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
    "schedulerName": "default-scheduler", "securityContext": {},
}
_CONTAINER_DEFAULTS: dict[str, Any] = {
    "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
}
# Container fields the API server may fill in whatever their value (requests from limits).
_CONTAINER_FREE = {"resources"}

Extra = tuple[str, Any]  # (JSON pointer, the value found there)


def _pointer(*parts: str | int) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _dict_extras(desired: Any, observed: Any, base: str) -> list[Extra]:
    """Keys anywhere below `observed` that `desired` lacks (e.g. securityContext)."""
    if not isinstance(desired, dict) or not isinstance(observed, dict):
        return []
    found: list[Extra] = []
    for key, value in observed.items():
        if key not in desired:
            found.append((base + _pointer(key), value))
        else:
            found += _dict_extras(desired[key], value, base + _pointer(key))
    return found


def _named_extras(desired: list[Any], observed: list[Any], base: str) -> list[Extra]:
    names = {item.get("name") for item in desired if isinstance(item, dict)}
    return [
        (base + _pointer(index), item) for index, item in enumerate(observed)
        if isinstance(item, dict) and item.get("name") not in names
    ]


def _unnamed_extras(desired: list[Any], observed: list[Any], base: str) -> list[Extra]:
    return [(base + _pointer(i), item) for i, item in enumerate(observed) if item not in desired]


def _field_extras(
    desired: dict[str, Any], observed: dict[str, Any], base: str, defaults: dict[str, Any],
    free: Collection[str] = (),
) -> list[Extra]:
    return [
        (base + _pointer(key), value) for key, value in observed.items()
        if key not in desired and key not in free
        and not (key in defaults and defaults[key] == value)
    ]


def _container_extras(desired: dict[str, Any], observed: dict[str, Any], base: str) -> list[Extra]:
    found = _field_extras(desired, observed, base, _CONTAINER_DEFAULTS, _CONTAINER_FREE)
    for key in ("env", "volumeMounts"):
        if key in desired:
            found += _named_extras(desired[key], observed.get(key) or [], base + _pointer(key))
    if "envFrom" in desired:
        found += _unnamed_extras(desired["envFrom"], observed.get("envFrom") or [],
                                 base + _pointer("envFrom"))
    if "securityContext" in desired:
        found += _dict_extras(desired["securityContext"], observed.get("securityContext"),
                              base + _pointer("securityContext"))
    return found


def _pod_extras(desired: dict[str, Any], observed: dict[str, Any], base: str) -> list[Extra]:
    found = _field_extras(desired, observed, base, _POD_DEFAULTS)
    for key in ("containers", "initContainers", "volumes"):
        if key in desired:
            found += _named_extras(desired[key], observed.get(key) or [], base + _pointer(key))
    for key in ("containers", "initContainers"):
        by_name = {item["name"]: item for item in desired.get(key, [])}
        for index, item in enumerate(observed.get(key) or []):
            if item.get("name") in by_name:
                found += _container_extras(by_name[item["name"]], item,
                                           base + _pointer(key, index))
    if "securityContext" in desired:
        found += _dict_extras(desired["securityContext"], observed.get("securityContext"),
                              base + _pointer("securityContext"))
    return found


def unexpected_fields(desired: dict[str, Any], observed: dict[str, Any]) -> list[Extra]:
    """What `observed` carries, where only the operator decides, that `desired` does not.

    Covers the pod templates of Deployments and StatefulSets (containers, env, envFrom,
    command, args, probes, volumes, volume mounts, security contexts, and pod-level fields
    such as hostNetwork or serviceAccountName) and the data of ConfigMaps and Secrets (read
    whole into the pods' environment). Job templates are immutable and a Job is replaced
    by name when its spec changes, so they are left out."""
    kind = desired.get("kind")
    if kind in ("ConfigMap", "Secret"):
        found: list[Extra] = []
        for section in ("data", "binaryData"):
            want = desired.get(section) or {}
            found += [(_pointer(section, key), value)
                      for key, value in (observed.get(section) or {}).items() if key not in want]
        return found
    if kind in ("Deployment", "StatefulSet"):
        want = desired.get("spec", {}).get("template", {}).get("spec")
        have = observed.get("spec", {}).get("template", {}).get("spec")
        if isinstance(want, dict) and isinstance(have, dict):
            return _pod_extras(want, have, _pointer("spec", "template", "spec"))
    return []


def removal_patch(extras: list[Extra]) -> list[dict[str, Any]]:
    """A JSON patch that removes exactly what was found, or fails if it changed meanwhile.

    List items go last-index first, so earlier removals do not shift later paths."""
    def order(extra: Extra) -> list[tuple[int, int | str]]:
        return [(1, int(part)) if part.isdigit() else (0, part)
                for part in extra[0].split("/")[1:]]

    patch: list[dict[str, Any]] = []
    for path, value in sorted(extras, key=order, reverse=True):
        patch += [{"op": "test", "path": path, "value": value}, {"op": "remove", "path": path}]
    return patch


def describe_extras(extras: list[Extra]) -> list[str]:
    """Readable names of removed fields, e.g. `containers[0].env[THUMBNAIL_AUTH_ENABLED]`."""
    names: list[str] = []
    for path, value in extras:
        label = path.removeprefix("/spec/template/spec/").replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and "name" in value:
            label = label.rsplit("/", 1)[0] + f"[{value['name']}]"
        names.append(label.replace("/", "."))
    return names
