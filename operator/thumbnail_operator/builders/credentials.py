"""Credentials for the managed components: generated once, then never replaced by surprise.

Credentials are data: PostgreSQL and MinIO keep the ones they were initialised with on their
volumes, and API clients hold the API keys. So a value, once issued, is only ever replaced by
the user (rotation = writing a new value into the Secret). Each pass resolves every key from,
in order: the user-facing Secret `NAME-credentials`, the operator's own copy
`NAME-credentials-copy` (kept equal to what was resolved last), and only then a fresh random
value - and a fresh value only while nothing that uses the key exists yet. A key that is in
use but found nowhere is *lost*: the reconciler reports it and writes nothing, until the user
restores the Secret or explicitly asks for new credentials (`REGENERATE_ANNOTATION`).
"""

from __future__ import annotations

import hashlib
import secrets
import string
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from thumbnail_operator import constants as c
from thumbnail_operator.api.v1 import ThumbnailServiceSpec

DATABASE_PASSWORD = "THUMBNAIL_DATABASE_PASSWORD"
REDIS_PASSWORD = "THUMBNAIL_REDIS_PASSWORD"
S3_ACCESS_KEY = "THUMBNAIL_S3_ACCESS_KEY"
S3_SECRET_KEY = "THUMBNAIL_S3_SECRET_KEY"
API_KEYS = "THUMBNAIL_API_KEYS"
RENDITION_KEYS = "THUMBNAIL_RENDITION_KEYS"
RENDITION_SALTS = "THUMBNAIL_RENDITION_SALTS"
WEBHOOK_SECRETS = "THUMBNAIL_WEBHOOK_SECRETS"
# Comma-separated lists whose previous first entry a rotation keeps after the new one, so
# what clients hold (API keys, signed URLs, webhook verification) keeps working until the
# next rotation. Rendition keys and salts are pairs by position: they keep theirs together.
KEEPS_PREVIOUS = ((API_KEYS,), (RENDITION_KEYS, RENDITION_SALTS), (WEBHOOK_SECRETS,))
# Issued afresh when found nowhere, even in use: a service that predates them gets them on
# upgrade, and a lost one only makes URLs signed with it answer 403 (renditions) or
# receivers reject deliveries until they learn the new secret (webhooks), as after a
# rotation without overlap; no data store or client login depends on them.
REISSUED_WHEN_LOST = frozenset({RENDITION_KEYS, RENDITION_SALTS, WEBHOOK_SECRETS})

# Set to "true" on the ThumbnailService to let the operator issue new values for lost keys
# (the data stores are rolled onto them; API clients need the new key).
REGENERATE_ANNOTATION = f"{c.GROUP}/regenerate-credentials"
# Set to any new value on the ThumbnailService to rotate every generated credential once per
# value; the value last handled is kept on the copy Secret (ROTATION_ANNOTATION), written
# together with the new values, so a retried pass does not rotate twice.
ROTATE_ANNOTATION = f"{c.GROUP}/rotate-credentials"
ROTATION_ANNOTATION = f"{c.GROUP}/rotation"
ROTATED_AT_ANNOTATION = f"{c.GROUP}/rotated-at"

_ALPHANUMERIC = string.ascii_letters + string.digits


def random_token(length: int) -> str:
    """Alphanumeric only: safe in URLs, shell words and `$(VAR)` expansion."""
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))


def _generators(spec: ThumbnailServiceSpec) -> dict[str, Callable[[], str]]:
    wanted: dict[str, Callable[[], str]] = {
        API_KEYS: lambda: random_token(40),
        # imgproxy-style hex.
        RENDITION_KEYS: lambda: secrets.token_hex(32),
        RENDITION_SALTS: lambda: secrets.token_hex(16),
        WEBHOOK_SECRETS: lambda: "whsec" + random_token(40),
    }
    if spec.postgresql.is_managed:
        wanted[DATABASE_PASSWORD] = lambda: random_token(32)
    if spec.redis.is_managed:
        wanted[REDIS_PASSWORD] = lambda: random_token(32)
    if spec.object_storage.is_managed:
        # MinIO wants an access key of at least 3 and a secret of at least 8 characters.
        wanted[S3_ACCESS_KEY] = lambda: "tns" + random_token(17).lower()
        wanted[S3_SECRET_KEY] = lambda: random_token(40)
    return wanted


@dataclass(frozen=True)
class Rotation:
    """The last rotation: the ROTATE_ANNOTATION value it handled, and when (RFC 3339)."""

    token: str
    at: str

    @classmethod
    def recorded_on(cls, copy_secret: Mapping[str, object] | None) -> Rotation | None:
        metadata = (copy_secret or {}).get("metadata")
        annotations = (metadata.get("annotations") if isinstance(metadata, dict) else None) or {}
        token = annotations.get(ROTATION_ANNOTATION)
        return cls(token, annotations.get(ROTATED_AT_ANNOTATION, "")) if token else None


@dataclass(frozen=True)
class ResolvedCredentials:
    values: dict[str, str]
    restored: list[str] = field(default_factory=list)  # keys taken from the operator's copy
    generated: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # in use, found nowhere, not regenerated
    rotated: list[str] = field(default_factory=list)  # replaced by a rotation


def resolve_credentials(
    spec: ThumbnailServiceSpec,
    secret: Mapping[str, str] | None,
    copy: Mapping[str, str] | None = None,
    in_use: Collection[str] = (),
    regenerate: bool = False,
    rotate: bool = False,
) -> ResolvedCredentials:
    """Every key the spec needs, from the Secret, else the copy, else new where allowed.

    `rotate`: a new value for every key, except that the KEEPS_PREVIOUS lists become the new
    value plus the previous first one, so clients can move over before the next rotation."""
    primary, kept = dict(secret or {}), dict(copy or {})
    if rotate:
        fresh = {key: generate() for key, generate in _generators(spec).items()}
        for group in KEEPS_PREVIOUS:
            # The copy first: it holds what was issued last even if a failed pass half-wrote
            # the Secret with a rotation that is now retried.
            previous = {key: (kept.get(key) or primary.get(key) or "").split(",")[0].strip()
                        for key in group}
            if all(previous.values()):  # a pair keeps both halves, or neither
                for key in group:
                    fresh[key] = f"{fresh[key]},{previous[key]}"
        return ResolvedCredentials(fresh, rotated=sorted(fresh))
    values: dict[str, str] = {}
    restored: list[str] = []
    generated: list[str] = []
    lost: list[str] = []
    for key, generate in _generators(spec).items():
        if primary.get(key):
            values[key] = primary[key]
        elif kept.get(key):
            values[key] = kept[key]
            restored.append(key)
        elif key in in_use and key not in REISSUED_WHEN_LOST and not regenerate:
            lost.append(key)
        else:
            values[key] = generate()
            generated.append(key)
    return ResolvedCredentials(values, restored, generated, lost)


def ensure_credentials(
    spec: ThumbnailServiceSpec, existing: Mapping[str, str] | None
) -> dict[str, str]:
    """The credentials the spec needs: existing values reused, missing ones generated."""
    return resolve_credentials(spec, existing).values


def digest(credentials: Mapping[str, str], keys: Collection[str]) -> str:
    """Fingerprint of some credentials, for a pod template that must roll when they change."""
    material = "\n".join(f"{key}={credentials.get(key, '')}" for key in sorted(keys))
    return hashlib.sha256(material.encode()).hexdigest()[:16]
