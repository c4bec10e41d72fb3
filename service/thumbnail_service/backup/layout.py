"""Where a backup's objects live: `<prefix>/<id>/...` in the backup bucket (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["originals", "thumbnails"]
MANIFEST = "manifest.json"
JOBS = "jobs.jsonl.gz"


@dataclass(frozen=True)
class Location:
    bucket: str
    prefix: str  # no leading or trailing slash; "" = the bucket's top level
    id: str

    @property
    def parent(self) -> str:
        """The key prefix under which every backup of this destination has its directory."""
        return f"{self.prefix}/" if self.prefix else ""

    @property
    def base(self) -> str:
        return f"{self.parent}{self.id}"

    @property
    def manifest_key(self) -> str:
        return f"{self.base}/{MANIFEST}"

    @property
    def jobs_key(self) -> str:
        return f"{self.base}/{JOBS}"

    def object_key(self, kind: Kind, key: str) -> str:
        """The backup's copy of `key` from the service's originals or thumbnails bucket."""
        return f"{self.base}/{kind}/{key}"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.base}/"

    def sibling(self, backup_id: str) -> Location:
        return Location(self.bucket, self.prefix, backup_id)
