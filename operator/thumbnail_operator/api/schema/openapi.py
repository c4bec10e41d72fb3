"""Tiny helpers to write structural OpenAPI v3 schemas (every field gets a description)."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

# Kubernetes name grammars as RE2 for CEL rules (no backslashes: `[.]` is a literal dot).
# A DNS-1123 subdomain: what Kubernetes requires of Secret, StorageClass and PriorityClass names.
DNS_SUBDOMAIN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# A label key (qualified name): an optional DNS-subdomain prefix and '/', then a name of at
# most 63 characters; and a label value (empty, or at most 63 characters).
_LABEL_NAME = "[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
LABEL_KEY = f"^({DNS_SUBDOMAIN[1:-1]}/)?{_LABEL_NAME}$"
LABEL_VALUE = f"^({_LABEL_NAME})?$"


def rule(expression: str, message: str, **extra: str) -> dict[str, str]:
    return {"rule": expression, "message": message, **extra}


def _with(schema: Schema, default: Any, rules: list[dict[str, str]] | None) -> Schema:
    if default is not None:
        schema["default"] = default
    if rules:
        schema["x-kubernetes-validations"] = rules
    return schema


def string(
    description: str,
    *,
    default: str | None = None,
    enum: list[str] | None = None,
    pattern: str | None = None,
    min_length: int | None = None,
    max_length: int = 253,
    rules: list[dict[str, str]] | None = None,
) -> Schema:
    schema: Schema = {"type": "string", "description": description}
    if enum:
        schema["enum"] = enum
    else:
        schema["maxLength"] = max_length
    if pattern:
        schema["pattern"] = pattern
    if min_length is not None:
        schema["minLength"] = min_length
    return _with(schema, default, rules)


def integer(
    description: str,
    *,
    default: int | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
    rules: list[dict[str, str]] | None = None,
) -> Schema:
    schema: Schema = {"type": "integer", "description": description}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    if schema.get("maximum", 0) > 2**31:
        schema["format"] = "int64"
    else:
        schema["format"] = "int32"
    return _with(schema, default, rules)


def boolean(description: str, *, default: bool | None = None) -> Schema:
    return _with({"type": "boolean", "description": description}, default, None)


def obj(
    description: str,
    properties: dict[str, Schema],
    *,
    required: list[str] | None = None,
    default: dict[str, Any] | None = None,
    rules: list[dict[str, str]] | None = None,
) -> Schema:
    schema: Schema = {"type": "object", "description": description, "properties": properties}
    if required:
        schema["required"] = required
    return _with(schema, default, rules)


def string_map(
    description: str, value: Schema, *, max_properties: int, default: Any = None
) -> Schema:
    schema: Schema = {
        "type": "object",
        "description": description,
        "additionalProperties": value,
        "maxProperties": max_properties,
    }
    return _with(schema, default, None)


def array(
    description: str,
    items: Schema,
    *,
    max_items: int,
    default: list[Any] | None = None,
    list_type: str | None = None,
    rules: list[dict[str, str]] | None = None,
) -> Schema:
    schema: Schema = {
        "type": "array",
        "description": description,
        "items": items,
        "maxItems": max_items,
    }
    if list_type:
        schema["x-kubernetes-list-type"] = list_type
    return _with(schema, default, rules)


def resource(description: str, name: Schema, spec: Schema, status: Schema) -> Schema:
    """The top level of a custom resource's schema: `name` constrains metadata.name (only
    name/generateName may be; the bound also caps CEL cost)."""
    return {
        "type": "object",
        "description": description,
        "properties": {
            "apiVersion": {"type": "string", "description": "API version of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": {"type": "object", "properties": {"name": name}},
            "spec": spec,
            "status": status,
        },
    }
