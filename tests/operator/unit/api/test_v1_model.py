"""Parsing a v1 spec (camelCase, partial) into the typed hub model."""

from __future__ import annotations

from thumbnail_operator.api.v1 import DEFAULTS, Mode, PullPolicy, RetentionPolicy, parse_spec


def test_empty_spec_has_the_helm_defaults() -> None:
    spec = parse_spec(None)
    assert spec == DEFAULTS
    assert spec.server.replicas == 1 and spec.workers.replicas == 2
    assert spec.server.service.port == 8000
    assert spec.server.service.node_port.port == 30000
    assert spec.object_storage.managed.console.node_port.port == 30001
    buckets = spec.object_storage.buckets
    assert (buckets.originals, buckets.thumbnails) == ("raws", "thumbnails")
    assert spec.persistence.enabled and spec.persistence.retention_policy is RetentionPolicy.RETAIN
    assert [p.name for p in spec.thumbnails.presets] == ["small", "medium", "large"]
    assert spec.server.resources.limits == {"cpu": "500m", "memory": "512Mi"}
    assert spec.postgresql.is_managed and spec.postgresql.connection is None


def test_camel_case_fields_are_read() -> None:
    spec = parse_spec({
        "workers": {"image": {"repository": "w", "tag": "2", "pullPolicy": "Never"}},
        "persistence": {"retentionPolicy": "Delete", "storageClassName": "ssd"},
        "thumbnails": {"limits": {"maxUploadBytes": 5}, "authEnabled": False},
        "postgresql": {"mode": "External", "external": {"host": "db", "secretRef": {"name": "s"}}},
        "imagePullSecrets": [{"name": "regcred"}],
    })
    assert spec.workers.image.reference == "w:2"
    assert spec.workers.image.pull_policy is PullPolicy.NEVER
    assert spec.persistence.retention_policy is RetentionPolicy.DELETE
    assert spec.persistence.storage_class_name == "ssd"
    assert spec.thumbnails.limits.max_upload_bytes == 5
    assert spec.thumbnails.auth_enabled is False
    assert spec.postgresql.mode is Mode.EXTERNAL and not spec.postgresql.is_managed
    external = spec.postgresql.connection
    assert external is not None and external.secret_ref.key == "password"
    assert external.port == 5432
    assert [ref.name for ref in spec.image_pull_secrets] == ["regcred"]


def test_an_external_block_is_ignored_while_managed() -> None:
    spec = parse_spec({"redis": {"external": {"host": "cache"}}})  # CEL forbids it anyway
    assert spec.redis.is_managed and spec.redis.connection is None


def test_unknown_fields_are_ignored() -> None:
    assert parse_spec({"future": {"x": 1}}) == parse_spec({})
