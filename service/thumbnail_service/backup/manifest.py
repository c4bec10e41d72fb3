"""manifest.json: what a backup holds; written last, so its presence marks it complete (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer
from pydantic.alias_generators import to_camel

FORMAT = 1
Kind = Literal["scheduled", "on-demand"]


class ManifestError(ValueError):
    pass


def rfc3339(moment: datetime) -> str:
    """UTC with a 'Z', to the second: the form Kubernetes uses for its own timestamps."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Manifest(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    format: int = FORMAT
    id: str
    service: str
    kind: Kind
    started_at: datetime
    finished_at: datetime
    schema_version: int = Field(ge=0)
    jobs: int = Field(ge=0)
    thumbnails: int = Field(ge=0)
    objects: int = Field(ge=0)
    bytes: int = Field(ge=0)
    skipped: int = Field(ge=0)

    @field_serializer("started_at", "finished_at")
    def _utc(self, moment: datetime) -> str:
        return rfc3339(moment)


def dump(manifest: Manifest) -> bytes:
    return json.dumps(manifest.model_dump(by_alias=True), indent=2).encode() + b"\n"


def parse(data: bytes) -> Manifest:
    """A manifest this release can read; ManifestError (one line) otherwise."""
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise ManifestError(f"manifest.json is not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ManifestError("manifest.json is not a JSON object")
    if raw.get("format") != FORMAT:
        raise ManifestError(
            f"unsupported backup format {raw.get('format')!r}: this release reads format {FORMAT}"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ManifestError(f"manifest.json: {where}: {first['msg']}") from None
