"""Names shared by the CRD, the builders and the reconciler (one place to change them)."""

from __future__ import annotations

from typing import Final

GROUP: Final = "thumbnails.platform.dev"
# The hub and storage version: what the operator reads, watches and owns children as.
VERSION: Final = "v1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
# Still served, deprecated; the conversion webhook translates it to and from the hub.
DEPRECATED_VERSION: Final = "v1alpha1"
DEPRECATED_API_VERSION: Final = f"{GROUP}/{DEPRECATED_VERSION}"
KIND: Final = "ThumbnailService"
PLURAL: Final = "thumbnailservices"

FIELD_MANAGER: Final = "thumbnail-operator"
APP_NAME: Final = "thumbnail-service"
PART_OF: Final = "thumbnail-platform"

LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"

CONFIG_HASH_ANNOTATION: Final = f"{GROUP}/config-hash"
# On a data store's pod template: a fingerprint of the credentials it is started with, so
# rotating one (editing the Secret) restarts exactly the data store that uses it.
CREDENTIALS_HASH_ANNOTATION: Final = f"{GROUP}/credentials-hash"
APPLIED_HASH_ANNOTATION: Final = f"{GROUP}/applied-hash"
PAUSE_ANNOTATION: Final = f"{GROUP}/reconcile-paused"
# On the API server Deployment that restores a backup: which one, so the same restore init
# container is rebuilt after the ThumbnailBackup object is gone (retention, by hand).
RESTORE_SOURCE_ANNOTATION: Final = f"{GROUP}/restore-source"

API_PORT: Final = 8000
# The worker supervisor's /healthz and /readyz (THUMBNAIL_WORKER_HEALTH_PORT).
WORKER_HEALTH_PORT: Final = 8081
POSTGRES_PORT: Final = 5432
REDIS_PORT: Final = 6379
MINIO_API_PORT: Final = 9000
MINIO_CONSOLE_PORT: Final = 9001

# Where the API server calls the conversion webhook. The Service port equals the operator's
# listening port, so that a local control plane can use an ExternalName Service
# (-> localhost) with the same CRD (docs/upgrading.md).
WEBHOOK_NAMESPACE: Final = "thumbnail-system"
WEBHOOK_SERVICE: Final = "thumbnail-operator-webhook"
WEBHOOK_PATH: Final = "/convert"
WEBHOOK_PORT: Final = 9443

# On-demand and scheduled backups of a ThumbnailService (api/backup.py).
BACKUP_KIND: Final = "ThumbnailBackup"
BACKUP_PLURAL: Final = "thumbnailbackups"
# On a backup Job and its ThumbnailBackup: which backup it is; on a scheduled ThumbnailBackup:
# that the operator made it on `spec.backup.schedule` (retention prunes only those).
BACKUP_LABEL: Final = f"{GROUP}/backup"
SCHEDULED_LABEL: Final = f"{GROUP}/scheduled"
