"""Credentials are random, generated once, never rotated by a later reconcile unless asked."""

from __future__ import annotations

from thumbnail_operator.api.v1 import parse_spec
from thumbnail_operator.builders.credentials import (
    API_KEYS,
    DATABASE_PASSWORD,
    REDIS_PASSWORD,
    RENDITION_KEYS,
    RENDITION_SALTS,
    S3_ACCESS_KEY,
    S3_SECRET_KEY,
    WEBHOOK_SECRETS,
    digest,
    ensure_credentials,
    resolve_credentials,
)

ALL = {API_KEYS, DATABASE_PASSWORD, REDIS_PASSWORD, S3_ACCESS_KEY, S3_SECRET_KEY,
       RENDITION_KEYS, RENDITION_SALTS, WEBHOOK_SECRETS}


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
    assert set(ensure_credentials(spec, None)) == {
        API_KEYS, REDIS_PASSWORD, RENDITION_KEYS, RENDITION_SALTS, WEBHOOK_SECRETS}


# -- credentials are data: resolved from the Secret, its copy, or new only while unused ----


def test_values_come_from_the_secret_first_then_the_copy() -> None:
    spec = parse_spec({})
    secret = {API_KEYS: "from-secret"}
    kept = {API_KEYS: "from-copy", DATABASE_PASSWORD: "kept-db"}
    resolved = resolve_credentials(spec, secret, kept, in_use=ALL)
    assert resolved.values[API_KEYS] == "from-secret"
    assert resolved.values[DATABASE_PASSWORD] == "kept-db"
    assert resolved.restored == [DATABASE_PASSWORD]
    assert set(resolved.lost) == {REDIS_PASSWORD, S3_ACCESS_KEY, S3_SECRET_KEY}
    assert set(resolved.generated) == {RENDITION_KEYS, RENDITION_SALTS, WEBHOOK_SECRETS}


def test_a_key_in_use_is_never_generated_unless_asked() -> None:
    spec = parse_spec({})
    lost = resolve_credentials(spec, {}, {}, in_use={DATABASE_PASSWORD})
    assert lost.lost == [DATABASE_PASSWORD] and DATABASE_PASSWORD not in lost.values
    assert set(lost.generated) == ALL - {DATABASE_PASSWORD}  # nothing uses those yet
    asked = resolve_credentials(spec, {}, {}, in_use={DATABASE_PASSWORD}, regenerate=True)
    assert not asked.lost and len(asked.values[DATABASE_PASSWORD]) == 32


def test_digest_changes_with_the_keys_it_covers_only() -> None:
    base = {DATABASE_PASSWORD: "a", REDIS_PASSWORD: "b"}
    assert digest(base, [DATABASE_PASSWORD]) == digest(
        {**base, REDIS_PASSWORD: "c"}, [DATABASE_PASSWORD])
    assert digest(base, [DATABASE_PASSWORD]) != digest(
        {**base, DATABASE_PASSWORD: "z"}, [DATABASE_PASSWORD])


def test_rotation_replaces_every_key_and_keeps_the_previous_api_key_valid() -> None:
    spec = parse_spec({})
    issued = ensure_credentials(spec, None)
    issued[API_KEYS] = "current-key,older-key"
    half_written = {**issued, API_KEYS: "never-announced"}  # a failed pass's Secret
    rotated = resolve_credentials(spec, half_written, issued, in_use=ALL, rotate=True)
    assert rotated.rotated == sorted(ALL) and not rotated.lost
    for key in ALL - {API_KEYS}:
        assert rotated.values[key] not in (issued[key], half_written[key])
    new_key, previous = rotated.values[API_KEYS].split(",")
    assert previous == "current-key" and new_key not in issued[API_KEYS]
    # Signing pairs: the new pair first, the previous pair second, keys and salts aligned.
    for key in (RENDITION_KEYS, RENDITION_SALTS):
        new, old = rotated.values[key].split(",")
        assert old == issued[key] and new != old and bytes.fromhex(new)
    new_secret, old_secret = rotated.values[WEBHOOK_SECRETS].split(",")
    assert old_secret == issued[WEBHOOK_SECRETS] and new_secret != old_secret


def test_signing_pairs_are_generated_for_a_service_that_predates_them() -> None:
    spec = parse_spec({})
    issued = ensure_credentials(spec, None)
    newer = (RENDITION_KEYS, RENDITION_SALTS, WEBHOOK_SECRETS)
    before = {k: v for k, v in issued.items() if k not in newer}
    upgraded = resolve_credentials(spec, before, before, in_use=ALL)
    assert not upgraded.lost and upgraded.generated == list(newer)
    assert len(bytes.fromhex(upgraded.values[RENDITION_KEYS])) == 32


def test_rotation_of_external_components_leaves_them_alone() -> None:
    spec = parse_spec({"postgresql": {"mode": "External", "external": {
        "host": "db", "secretRef": {"name": "db"}}}})
    rotated = resolve_credentials(spec, ensure_credentials(spec, None), rotate=True)
    assert DATABASE_PASSWORD not in rotated.values
