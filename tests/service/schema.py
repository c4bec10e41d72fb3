"""What an OpenAPI schema admits, for the keywords the API's own schema uses (a client
generated from /openapi.json validates the same way). No jsonschema package needed."""

from __future__ import annotations

import re
from typing import Any


def admits(schema: dict[str, Any], value: object) -> bool:
    """Does `schema` admit `value`? Form and query values are text, so an integer is a
    string of an optional minus sign and digits 0-9, as a client would write it."""
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            return False
        properties: dict[str, Any] = schema.get("properties", {})
        if any(name not in value for name in schema.get("required", ())):
            return False
        if schema.get("additionalProperties") is False and set(value) - set(properties):
            return False
        return all(admits(properties[k], v) for k, v in value.items() if k in properties)
    if kind == "integer":
        if not isinstance(value, str) or not re.fullmatch(r"-?[0-9]+", value):
            return False
        number = int(value)
        return schema.get("minimum", number) <= number <= schema.get("maximum", number)
    if kind == "string":
        if not isinstance(value, str):
            return False
        if "enum" in schema and value not in schema["enum"]:
            return False
        if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
            return False
        # JSON Schema patterns are not anchored: search, as ECMA-262's test() does.
        return "pattern" not in schema or re.search(schema["pattern"], value) is not None
    raise ValueError(f"keyword set not covered: {schema}")


def parameter(openapi: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    """The schema of one parameter of one operation."""
    operation = openapi["paths"][path][method]
    [found] = [p for p in operation.get("parameters", ()) if p["name"].lower() == name.lower()]
    schema: dict[str, Any] = found["schema"]
    return schema


def upload_form(openapi: dict[str, Any]) -> dict[str, Any]:
    body = openapi["paths"]["/v1/jobs"]["post"]["requestBody"]
    schema: dict[str, Any] = body["content"]["multipart/form-data"]["schema"]
    return schema
