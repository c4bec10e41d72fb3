"""The API server itself rejects invalid ThumbnailServices, with a message that says what to fix."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.operator.support import expect_api_error, patch_tns, sample
from thumbnail_operator.kube import THUMBNAIL_SERVICE_V1ALPHA1, KubeClient

pytestmark = pytest.mark.cluster


def dry_run_create(admin: KubeClient, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    return admin.request(
        "POST", THUMBNAIL_SERVICE_V1ALPHA1.path(namespace), body=body, query={"dryRun": "All"}
    )


def with_spec(spec: dict[str, Any], name: str = "invalid") -> dict[str, Any]:
    body = sample(name)
    body["spec"] = copy.deepcopy(spec)
    return body


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("external postgres without connection", {"postgresql": {"enabled": False}},
     "postgresql.external (host and secretRef) is required when postgresql.enabled is false"),
    ("external postgres without secretRef",
     {"postgresql": {"enabled": False, "external": {"host": "db.example.com"}}},
     "spec.postgresql.external.secretRef: Required value"),
    ("external s3 without secretRef",
     {"minio": {"enabled": False, "external": {"endpoint": "s3.example.com:443"}}},
     "spec.minio.external.secretRef: Required value"),
    ("node port below range",
     {"server": {"service": {"nodePort": {"enabled": True, "port": 29999}}}},
     "the API: nodePort.port must be within 30000-32767"),
    ("console node port above range",
     {"minio": {"console": {"nodePort": {"enabled": True, "port": 40000}}}},
     "the MinIO console: nodePort.port must be within 30000-32767"),
    ("same node port twice",
     {"server": {"service": {"nodePort": {"enabled": True, "port": 30100}}},
      "minio": {"console": {"nodePort": {"enabled": True, "port": 30100}}}},
     "the API and MinIO console node ports must differ"),
    ("bucket with uppercase", {"minio": {"buckets": {"originals": "Raw_Images"}}},
     "bucket names use lowercase letters, digits, dots and hyphens"),
    ("bucket with two dots", {"minio": {"buckets": {"originals": "raw..images"}}},
     "bucket names must not contain two adjacent dots"),
    ("bucket shaped like an IP", {"minio": {"buckets": {"thumbnails": "192.168.10.1"}}},
     "bucket names must not be formatted as an IP address"),
    ("bucket too short", {"minio": {"buckets": {"thumbnails": "ab"}}},
     "should be at least 3 chars long"),
    ("same bucket twice", {"minio": {"buckets": {"originals": "images", "thumbnails": "images"}}},
     "buckets.originals and buckets.thumbnails must be different buckets"),
    ("limits below requests",
     {"worker": {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "500m"}}}},
     "resources.limits.cpu must be >= resources.requests.cpu"),
    ("negative replicas", {"worker": {"replicas": -1}},
     "spec.worker.replicas: Invalid value: -1: spec.worker.replicas in body should be greater "
     "than or equal to 0"),
    ("bad preset name", {"thumbnails": {"presets": {"Huge!": {"width": 10, "height": 10}}}},
     "preset names are 1-32 lowercase letters, digits, '-' or '_'"),
    ("preset too large", {"thumbnails": {"presets": {"huge": {"width": 10000, "height": 10}}}},
     "should be less than or equal to 8192"),
    ("unknown log level", {"thumbnails": {"logLevel": "LOUD"}}, 'Unsupported value: "LOUD"'),
    ("bad quantity", {"postgresql": {"storage": {"size": "ten gigs"}}},
     "spec.postgresql.storage.size in body should match"),
]


@pytest.mark.parametrize(("spec", "message"), [(s, m) for _, s, m in INVALID],
                         ids=[case for case, _, _ in INVALID])
def test_invalid_spec_is_rejected_with_its_message(
    admin: KubeClient, crd: Any, namespace: str, spec: dict[str, Any], message: str
) -> None:
    err = expect_api_error(lambda: dry_run_create(admin, namespace, with_spec(spec)))
    assert err.status == 422
    assert message in err.message


def test_valid_external_dependencies_are_accepted(
    admin: KubeClient, crd: Any, namespace: str
) -> None:
    spec = {
        "postgresql": {"enabled": False, "external": {
            "host": "db.example.com", "secretRef": {"name": "db"}}},
        "redis": {"enabled": False, "external": {"host": "redis.example.com"}},
        "minio": {"enabled": False, "external": {
            "endpoint": "s3.example.com:443", "secretRef": {"name": "s3"}}},
    }
    created = dry_run_create(admin, namespace, with_spec(spec))
    assert created["spec"]["postgresql"]["external"]["secretRef"]["key"] == "password"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("x" * 41, "may not be more than 40"),
        ("1st-service", "metadata.name must start with a letter"),
    ],
)
def test_invalid_names_are_rejected(
    admin: KubeClient, crd: Any, namespace: str, name: str, message: str
) -> None:
    err = expect_api_error(lambda: dry_run_create(admin, namespace, sample(name)))
    assert err.status == 422
    assert message in err.message


def test_storage_size_is_immutable(admin: KubeClient, crd: Any, namespace: str) -> None:
    body = sample("frozen")
    body["spec"]["persistence"] = {"enabled": True}
    admin.request("POST", THUMBNAIL_SERVICE_V1ALPHA1.path(namespace), body=body)
    err = expect_api_error(
        lambda: patch_tns(admin, namespace, "frozen", {"postgresql": {"storage": {"size": "20Gi"}}})
    )
    assert err.status == 422
    assert "storage size is immutable" in err.message
    err = expect_api_error(
        lambda: patch_tns(admin, namespace, "frozen", {"persistence": {"enabled": False}})
    )
    assert "persistence.enabled is immutable" in err.message
    err = expect_api_error(
        lambda: patch_tns(admin, namespace, "frozen", {"postgresql": {"database": "other"}})
    )
    assert "postgresql.database and postgresql.user are immutable" in err.message
    patch_tns(admin, namespace, "frozen", {"worker": {"replicas": 3}})  # the rest may change
