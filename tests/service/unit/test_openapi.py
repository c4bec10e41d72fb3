"""/openapi.json admits exactly what the API accepts: the form, the cursor, the headers.

A client generated from the schema must not be able to build a request the API refuses
(the schema may be stricter than the parser: it wants ASCII spaces, no leading zeros, one
`sizes` field; it cannot say that size names must differ)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.service.schema import admits, parameter, upload_form
from thumbnail_service.api.app import create_app
from thumbnail_service.api.errors import ApiError
from thumbnail_service.api.routes.jobs import _decode_cursor, _encode_cursor
from thumbnail_service.api.upload import number_pattern, parse_options
from thumbnail_service.settings import Settings

FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def service_settings() -> Settings:
    return Settings(
        presets={"small": {"width": 128, "height": 128}, "hero-1": {"width": 1600, "height": 900}},
        max_output_dimension=2000,
        max_sizes_per_job=4,
    )


@pytest.fixture(scope="module")
def openapi(service_settings: Settings) -> dict[str, Any]:
    return create_app(service_settings).openapi()


def accepted(fields: dict[str, str], service_settings: Settings) -> bool:
    try:
        parse_options({k: [v] for k, v in fields.items()}, service_settings)
    except ApiError as exc:
        assert exc.status == 422
        return False
    return True


@pytest.mark.parametrize("high", [1, 9, 10, 99, 100, 101, 999, 2000, 4096])
def test_number_pattern_is_exactly_1_to_high(high: int) -> None:
    pattern = number_pattern(high)
    for n in range(0, 2 * high + 20):
        assert bool(re.fullmatch(pattern, str(n))) == (1 <= n <= high), (high, n)
    assert not re.fullmatch(pattern, f"0{high}")


@pytest.mark.parametrize(
    ("fields", "ok"),
    [
        ({}, True),
        ({"sizes": "small, hero-1,300x200,b=2000x1"}, True),
        ({"sizes": "small,a=1x1,b=1x1,c=1x1,d=1x1"}, False),  # 5 > max_sizes_per_job
        ({"sizes": "medium"}, False),  # not a preset of these settings
        ({"sizes": "2001x10"}, False),
        ({"sizes": "0x10"}, False),
        ({"sizes": "\u0661\u0660x\u0661\u0660"}, False),
        ({"sizes": "a\n=10x10"}, False),
        ({"sizes": ""}, False),
        ({"fit": "cover", "format": "webp", "quality": "1"}, True),
        ({"fit": "stretch"}, False),
        ({"format": "bmp"}, False),
        ({"quality": "100"}, True),
        ({"quality": "101"}, False),
        ({"quality": "0"}, False),
        ({"quality": "\u0663"}, False),
        ({"quality": "1_0"}, False),
        ({"quality": "8.0"}, False),
    ],
)
def test_the_form_schema_agrees_with_the_parser(
    openapi: dict[str, Any], service_settings: Settings, fields: dict[str, str], ok: bool
) -> None:
    assert admits(upload_form(openapi), {"file": "...", **fields}) is ok
    assert accepted(fields, service_settings) is ok


def test_the_form_admits_no_other_field_and_requires_the_file(openapi: dict[str, Any]) -> None:
    form = upload_form(openapi)
    assert not admits(form, {"file": "...", "colour": "red"})  # the API: 422 unknown_field
    assert not admits(form, {"sizes": "small"})  # the API: 422 missing_file


@FAST
@given(data=st.data())
def test_every_form_the_schema_admits_is_accepted(
    openapi: dict[str, Any], service_settings: Settings, data: st.DataObject
) -> None:
    properties = upload_form(openapi)["properties"]
    fields: dict[str, str] = {}
    if data.draw(st.booleans()):
        fields["sizes"] = data.draw(st.from_regex(properties["sizes"]["pattern"], fullmatch=True))
    for name in ("fit", "format"):
        if data.draw(st.booleans()):
            fields[name] = data.draw(st.sampled_from(properties[name]["enum"]))
    if data.draw(st.booleans()):
        fields["quality"] = str(data.draw(st.integers(1, 100)))
    assert admits(upload_form(openapi), {"file": "...", **fields})
    items = [i.strip() for i in fields.get("sizes", "").split(",") if i.strip()]
    names = [i.split("=")[0] if "=" in i else i for i in items]
    if len(set(names)) == len(names):  # the one rule a schema cannot state
        assert accepted(fields, service_settings), fields


@FAST
@given(
    value=st.one_of(
        st.text(max_size=30),
        st.text("0123456789x,= abcdlmsh-", max_size=40),
        st.sampled_from(["small", "hero-1", "1x1", "2000x2000", "2001x1", "01x1", "a=1x1"]),
    ),
    field=st.sampled_from(["sizes", "fit", "format", "quality"]),
)
def test_what_the_parser_refuses_the_schema_refuses(
    openapi: dict[str, Any], service_settings: Settings, value: str, field: str
) -> None:
    if not accepted({field: value}, service_settings):
        assert not admits(upload_form(openapi), {"file": "...", field: value}), (field, value)


@FAST
@given(
    created=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(9998, 12, 31)),
    job_id=st.uuids(),
)
def test_every_cursor_the_api_writes_is_admitted_and_read_back(
    openapi: dict[str, Any], created: datetime, job_id: uuid.UUID
) -> None:
    cursor = _encode_cursor(created.replace(tzinfo=UTC), job_id)
    assert admits(parameter(openapi, "/v1/jobs", "get", "cursor"), cursor)
    assert _decode_cursor(cursor) == (created.replace(tzinfo=UTC), job_id)


@FAST
@given(cursor=st.text(max_size=200))
def test_a_cursor_the_schema_refuses_is_refused(openapi: dict[str, Any], cursor: str) -> None:
    if not admits(parameter(openapi, "/v1/jobs", "get", "cursor"), cursor):
        with pytest.raises(ApiError) as info:
            _decode_cursor(cursor)
        assert info.value.status == 400


def test_header_and_query_limits_are_in_the_schema(openapi: dict[str, Any]) -> None:
    key = parameter(openapi, "/v1/jobs", "post", "Idempotency-Key")
    assert not admits(key, "") and admits(key, "k") and not admits(key, "k" * 256)
    limit = parameter(openapi, "/v1/jobs", "get", "limit")
    assert (limit["minimum"], limit["maximum"]) == (1, 100)


def _error_responses(openapi: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    yield method.upper(), path, status, response


def test_every_error_is_documented_in_the_error_shape(openapi: dict[str, Any]) -> None:
    # FastAPI documented its own 422 body ({"detail": [...]}, HTTPValidationError) wherever a
    # route did not list 422 itself (GET /healthz/detailed), while the API answers
    # {"error": {...}} everywhere; that schema requires nothing, so it "admitted" our body.
    for method, path, status, response in _error_responses(openapi):
        schema = response["content"]["application/json"]["schema"]
        expected = "DetailedHealth" if (path, status) == ("/healthz/detailed", "503") else (
            "ErrorResponse"
        )
        assert schema == {"$ref": f"#/components/schemas/{expected}"}, (method, path, status)
    assert not {"HTTPValidationError", "ValidationError"} & set(openapi["components"]["schemas"])
    detailed = openapi["paths"]["/healthz/detailed"]["get"]["responses"]
    assert "422" in detailed  # require_workers=maybe


def test_the_error_body_always_has_its_three_fields(openapi: dict[str, Any]) -> None:
    # `field` is always sent (null when no field is at fault): a client may rely on it.
    body = openapi["components"]["schemas"]["ErrorBody"]
    assert body["required"] == ["code", "message", "field"]


def test_the_headers_the_api_always_sends_are_documented(openapi: dict[str, Any]) -> None:
    jobs = openapi["paths"]["/v1/jobs"]
    download = openapi["paths"]["/v1/jobs/{job_id}/thumbnails/{name}"]["get"]["responses"]

    def required(response: dict[str, Any]) -> set[str]:
        return {name for name, h in response.get("headers", {}).items() if h.get("required")}

    assert required(jobs["post"]["responses"]["202"]) == {"Location"}
    assert "Idempotent-Replayed" in jobs["post"]["responses"]["202"]["headers"]
    assert required(download["200"]) == {"ETag", "Cache-Control", "Content-Disposition"}
    assert required(download["304"]) == {"ETag", "Cache-Control"}
    assert required(download["307"]) == {"Location", "Cache-Control"}
    for method, path, status, response in _error_responses(openapi):
        if status == "401":
            assert required(response) == {"WWW-Authenticate"}, (method, path)
        if status == "503" and path.startswith("/v1/"):
            assert required(response) == {"Retry-After"}, (method, path)
