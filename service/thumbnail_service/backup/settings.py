"""BackupSettings: the backup's own configuration, THUMBNAIL_BACKUP_* variables.

Read next to the service's Settings (database, object storage, bucket names), which are the
source of a backup and the target of a restore.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# A DNS label: the id names a Kubernetes object (ThumbnailBackup) and a directory.
ID_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


class BackupSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="THUMBNAIL_BACKUP_", extra="ignore", frozen=True, validate_default=True
    )

    id: str = Field(pattern=ID_PATTERN)
    bucket: str = Field(min_length=1)
    # Backups live at `<prefix>/<id>/` (or `<id>/` without a prefix).
    prefix: str = ""

    # Destination object storage; "" = the service's own (THUMBNAIL_S3_*, keys included).
    s3_endpoint: str = ""
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    s3_access_key: SecretStr = SecretStr("")
    s3_secret_key: SecretStr = SecretStr("")

    # Recorded in the manifest; retention only ever prunes scheduled backups of this service.
    service: str = ""
    scheduled: bool = False

    # create only; 0 = unlimited.
    retention_count: int = Field(default=0, ge=0)
    retention_max_age_seconds: int = Field(default=0, ge=0)

    # The pod's termination message: the operator reads the outcome from it.
    report_path: str = "/dev/termination-log"
    # Objects copied at once (threads, and as many S3 connections per side).
    concurrency: int = Field(default=8, ge=1, le=256)

    @field_validator("prefix")
    @classmethod
    def _bare_prefix(cls, value: str) -> str:
        if value.startswith("/") or value.endswith("/"):
            raise ValueError("must not start or end with '/'")
        return value
