"""Test helpers driven by the CRD's OpenAPI schemas: object generation, defaulting, pruning.

`objects(schema)` generates schema-valid, possibly partial objects (CEL rules aside), so the
round-trip properties run over the same shapes the API server accepts. `apply_defaults` and
`prune` mimic the API server's structural defaulting and pruning, which run on every object
after a conversion: a conversion must survive both.
"""

from __future__ import annotations

import copy
import datetime
import string
from typing import Any

from hypothesis import strategies as st

Schema = dict[str, Any]

_TEXT = st.text(alphabet=string.ascii_letters + string.digits + " -_./:", max_size=12)


def _string(schema: Schema) -> st.SearchStrategy[str]:
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if schema.get("format") == "date-time":
        return st.datetimes(timezones=st.just(datetime.UTC)).map(
            lambda d: d.replace(microsecond=0).isoformat().replace("+00:00", "Z")
        )
    lo, hi = schema.get("minLength", 0), min(schema.get("maxLength", 253), 24)
    if "pattern" in schema:
        base: st.SearchStrategy[str] = st.from_regex(schema["pattern"], fullmatch=True)
    else:
        base = st.text(alphabet=string.ascii_lowercase + string.digits + "-.", max_size=hi)
    return base.filter(lambda s: lo <= len(s) <= hi)


def _integer(schema: Schema) -> st.SearchStrategy[int]:
    return st.integers(min_value=schema.get("minimum", 0), max_value=schema.get("maximum", 2**31))


def _object(schema: Schema) -> st.SearchStrategy[dict[str, Any]]:
    if "additionalProperties" in schema:
        key_schema = {"type": "string", "pattern": r"^[a-z][a-z0-9]{0,6}$"}
        keys = _string(schema.get("x-test-key-schema", key_schema))
        return st.dictionaries(
            keys,
            objects(schema["additionalProperties"]),
            min_size=schema.get("minProperties", 0),
            max_size=min(schema.get("maxProperties", 4), 4),
        )
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    return st.fixed_dictionaries(
        {k: objects(v) for k, v in properties.items() if k in required},
        optional={k: objects(v) for k, v in properties.items() if k not in required},
    )


def _array(schema: Schema) -> st.SearchStrategy[list[Any]]:
    items = objects(schema["items"])
    size = {"min_size": schema.get("minItems", 0), "max_size": min(schema.get("maxItems", 4), 4)}
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set":
        return st.lists(items, unique=True, **size)
    if list_type == "map":
        keys = schema["x-kubernetes-list-map-keys"]
        return st.lists(items, unique_by=lambda item: tuple(item.get(k) for k in keys), **size)
    return st.lists(items, **size)


def objects(schema: Schema) -> st.SearchStrategy[Any]:
    """Values valid against a structural schema (types, enums, patterns, bounds, required)."""
    kind = schema.get("type")
    if kind == "object":
        return _object(schema)
    if kind == "array":
        return _array(schema)
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        return _integer(schema)
    if kind == "boolean":
        return st.booleans()
    if kind == "number":
        return st.floats(min_value=schema.get("minimum"), max_value=schema.get("maximum"),
                         allow_nan=False, allow_infinity=False)
    raise AssertionError(f"schema type {kind!r} not supported by the generator")


def with_preset_keys(schema: Schema) -> Schema:
    """Tell the generator which key pattern a map (additionalProperties) uses."""
    schema = copy.deepcopy(schema)
    presets = schema["properties"]["spec"]["properties"]["thumbnails"]["properties"]["presets"]
    presets["x-test-key-schema"] = {
        "type": "string", "pattern": r"^[a-z0-9]([-_a-z0-9]{0,30}[a-z0-9])?$", "maxLength": 32
    }
    return schema


# -- the API server's structural defaulting and pruning -------------------------------------


def apply_defaults(schema: Schema, value: Any) -> Any:
    """Fill absent properties with their schema defaults, recursively (like the API server)."""
    value = copy.deepcopy(value)
    _default(schema, value)
    return value


def _default(schema: Schema, value: Any) -> None:
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                _default(sub, value[key])
        if "additionalProperties" in schema and isinstance(schema["additionalProperties"], dict):
            for item in value.values():
                _default(schema["additionalProperties"], item)
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            _default(schema["items"], item)


def prune(schema: Schema, value: Any) -> Any:
    """Drop what the schema does not declare (like the API server's pruning).

    Metadata is the API server's own business (never pruned by a CRD schema)."""
    if isinstance(value, dict) and "metadata" in value:
        return {**_prune(schema, {k: v for k, v in value.items() if k != "metadata"}),
                "metadata": copy.deepcopy(value["metadata"])}
    return _prune(schema, value)


def _prune(schema: Schema, value: Any) -> Any:
    if isinstance(value, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("properties") is None:
            if "additionalProperties" in schema:
                return {k: _prune(schema["additionalProperties"], v) for k, v in value.items()}
            return copy.deepcopy(value)
        props = schema["properties"]
        return {k: _prune(props[k], v) for k, v in value.items() if k in props}
    if isinstance(value, list) and "items" in schema:
        return [_prune(schema["items"], item) for item in value]
    return copy.deepcopy(value)


def leaf_paths(schema: Schema, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Property paths down to leaves (maps, arrays and scalars count as leaves)."""
    properties = schema.get("properties")
    if schema.get("type") != "object" or not properties:
        return [path]
    found: list[tuple[str, ...]] = []
    for key, sub in properties.items():
        found += leaf_paths(sub, (*path, key))
    return found


def at(schema: Schema, path: tuple[str, ...]) -> Schema:
    for key in path:
        schema = schema["properties"][key]
    return schema
