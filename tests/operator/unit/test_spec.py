"""Parsing the CR's spec (camelCase, partial) into the typed model."""

from __future__ import annotations

from thumbnail_operator.spec import PullPolicy, RetentionPolicy, parse_spec


def test_empty_spec_has_the_helm_defaults() -> None:
    spec = parse_spec(None)
    assert spec.server.replicas == 1 and spec.worker.replicas == 2
    assert spec.server.service.port == 8000
    assert spec.server.service.node_port.port == 30000
    assert spec.minio.console.node_port.port == 30001
    assert (spec.minio.buckets.originals, spec.minio.buckets.thumbnails) == ("raws", "thumbnails")
    assert spec.persistence.enabled and spec.persistence.retention_policy is RetentionPolicy.RETAIN
    assert set(spec.thumbnails.presets) == {"small", "medium", "large"}
    assert spec.server.resources.limits == {"cpu": "500m", "memory": "512Mi"}


def test_camel_case_fields_are_read() -> None:
    spec = parse_spec({
        "images": {"worker": {"repository": "w", "tag": "2", "pullPolicy": "Never"}},
        "persistence": {"retentionPolicy": "Delete", "storageClassName": "ssd"},
        "thumbnails": {"limits": {"maxUploadBytes": 5}, "authEnabled": False},
        "postgresql": {"enabled": False, "external": {"host": "db", "secretRef": {"name": "s"}}},
    })
    assert spec.images.worker.reference == "w:2"
    assert spec.images.worker.pull_policy is PullPolicy.NEVER
    assert spec.persistence.retention_policy is RetentionPolicy.DELETE
    assert spec.persistence.storage_class_name == "ssd"
    assert spec.thumbnails.limits.max_upload_bytes == 5
    assert spec.thumbnails.auth_enabled is False
    assert spec.postgresql.external is not None
    assert spec.postgresql.external.secret_ref.key == "password"
    assert spec.postgresql.external.port == 5432


def test_unknown_fields_are_ignored() -> None:
    assert parse_spec({"future": {"x": 1}}) == parse_spec({})
