"""The bucket-init Job: creates both buckets idempotently with the MinIO client."""

from __future__ import annotations

import hashlib
import json

from thumbnail_operator.builders.common import Context, Obj, container, tmp_volume
from thumbnail_operator.builders.config import external_secret_env
from thumbnail_operator.builders.credentials import S3_ACCESS_KEY, S3_SECRET_KEY
from thumbnail_operator.builders.endpoints import dependencies
from thumbnail_operator.builders.workloads import (
    MINIO_UID,
    pod_spec,
    secret_env,
)

JOB_RESOURCES: Obj = {
    "requests": {"cpu": "10m", "memory": "32Mi"},
    "limits": {"cpu": "200m", "memory": "128Mi"},
}


def _s3_target(ctx: Context) -> str:
    deps = dependencies(ctx)
    return f"{'https' if deps.s3_secure else 'http'}://{deps.s3.address}"


def bucket_init_job(ctx: Context) -> Obj:
    buckets = ctx.spec.object_storage.buckets
    # `mc mb --ignore-existing` makes the Job safe to re-run; the alias retry waits for MinIO.
    script = (
        'until mc alias set target "$S3_ENDPOINT_URL" "$THUMBNAIL_S3_ACCESS_KEY" '
        '"$THUMBNAIL_S3_SECRET_KEY" >/dev/null; do echo waiting for object storage; sleep 2; done'
        f" && mc mb --ignore-existing target/{buckets.originals}"
        f" && mc mb --ignore-existing target/{buckets.thumbnails}"
    )
    own_keys = [
        secret_env(ctx, S3_ACCESS_KEY, S3_ACCESS_KEY),
        secret_env(ctx, S3_SECRET_KEY, S3_SECRET_KEY),
    ]
    external = [e for e in external_secret_env(ctx) if e["name"] in (S3_ACCESS_KEY, S3_SECRET_KEY)]
    main = container(
        "bucket-init",
        ctx.spec.object_storage.bucket_init.image,
        JOB_RESOURCES,
        command=["sh", "-c", script],
        env=[
            {"name": "S3_ENDPOINT_URL", "value": _s3_target(ctx)},
            {"name": "MC_CONFIG_DIR", "value": "/tmp/.mc"},
            *(external or own_keys),
        ],
        volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}],
    )
    pod = pod_spec(ctx, MINIO_UID, [main], [tmp_volume()])
    pod["restartPolicy"] = "OnFailure"
    spec: Obj = {
        "backoffLimit": 6,
        "activeDeadlineSeconds": 900,
        "template": {"metadata": {"labels": ctx.labels("bucket-init")}, "spec": pod},
    }
    # A Job's template is immutable: any change to it (target, buckets, image) is a new Job
    # under a new name; the reconciler prunes the old one.
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": ctx.metadata(ctx.names.bucket_init(digest), "bucket-init"),
        "spec": spec,
    }
