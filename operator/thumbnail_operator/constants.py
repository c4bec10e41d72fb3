"""Names shared by the CRD, the builders and the reconciler (one place to change them)."""

from __future__ import annotations

from typing import Final

GROUP: Final = "thumbnails.platform.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
# The storage version (issue 6): what the operator reads, watches and owns children as.
# v1alpha1 stays served (deprecated); the conversion webhook translates between the two.
STORAGE_VERSION: Final = "v1"
STORAGE_API_VERSION: Final = f"{GROUP}/{STORAGE_VERSION}"
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
APPLIED_HASH_ANNOTATION: Final = f"{GROUP}/applied-hash"
PAUSE_ANNOTATION: Final = f"{GROUP}/reconcile-paused"

API_PORT: Final = 8000
POSTGRES_PORT: Final = 5432
REDIS_PORT: Final = 6379
MINIO_API_PORT: Final = 9000
MINIO_CONSOLE_PORT: Final = 9001
