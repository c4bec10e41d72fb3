"""Credentials are random, generated once, and never rotated by a later reconcile."""

from __future__ import annotations

from thumbnail_operator.api.v1 import parse_spec
from thumbnail_operator.builders.credentials import (
    API_KEYS,
    DATABASE_PASSWORD,
    REDIS_PASSWORD,
    S3_ACCESS_KEY,
    S3_SECRET_KEY,
    ensure_credentials,
)

ALL = {API_KEYS, DATABASE_PASSWORD, REDIS_PASSWORD, S3_ACCESS_KEY, S3_SECRET_KEY}


def test_first_reconcile_generates_strong_random_values() -> None:
    spec = parse_spec({})
    one, two = ensure_credentials(spec, None), ensure_credentials(spec, None)
    assert set(one) == ALL
    for key in ALL:
        assert one[key] != two[key]
        assert len(one[key]) >= 20
        assert one[key].lower() not in {"admin", "minioadmin", "password"}


def test_existing_values_are_reused_and_only_missing_ones_generated() -> None:
    spec = parse_spec({})
    existing = {DATABASE_PASSWORD: "kept-db", API_KEYS: "kept-key"}
    result = ensure_credentials(spec, existing)
    assert result[DATABASE_PASSWORD] == "kept-db"
    assert result[API_KEYS] == "kept-key"
    assert result[REDIS_PASSWORD] and result[S3_SECRET_KEY]
    assert ensure_credentials(spec, result) == result


def test_external_components_get_no_generated_credentials() -> None:
    spec = parse_spec({
        "postgresql": {"mode": "External", "external": {"host": "db", "secretRef": {"name": "x"}}},
        "objectStorage": {"mode": "External",
                          "external": {"endpoint": "s3:443", "secretRef": {"name": "y"}}},
    })
    assert set(ensure_credentials(spec, None)) == {API_KEYS, REDIS_PASSWORD}
