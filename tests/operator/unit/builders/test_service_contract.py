"""What the operator renders is accepted by the service's own settings model."""

from __future__ import annotations

import base64

import pytest

from tests.operator.unit.helpers import by_name, desired
from thumbnail_service.settings import Settings


def test_rendered_environment_loads_into_service_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = desired({
        "thumbnails": {"presets": [{"name": "icon", "width": 48, "height": 48}],
                       "allowedFormats": ["png", "jpeg"], "logLevel": "DEBUG"},
        "workers": {"concurrency": {"processes": 2, "threads": 8}},
    })
    objs = by_name(state)
    env = dict(objs[("ConfigMap", "demo-config")]["data"])
    env |= {k: base64.b64decode(v).decode()
            for k, v in objs[("Secret", "demo-credentials")]["data"].items()}
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    settings = Settings()

    assert settings.database_host == "demo-postgresql"
    assert settings.redis_host == "demo-redis"
    assert settings.host == "0.0.0.0" and settings.port == 8000
    assert settings.presets["icon"].width == 48
    assert {str(getattr(f, "value", f)) for f in settings.allowed_formats} == {"png", "jpeg"}
    assert (settings.worker_processes, settings.worker_threads) == (2, 8)
    assert settings.database_password.get_secret_value() == env["THUMBNAIL_DATABASE_PASSWORD"]
    assert [k.get_secret_value() for k in settings.api_keys] == [env["THUMBNAIL_API_KEYS"]]
    assert settings.log_level == "DEBUG"


# The service's own defaults (settings.py, for running it without the operator) and the
# operator's (api/v1.py DEFAULTS) describe the same product: checked, not copied.
SHARED_DEFAULTS = (
    "database_name", "database_user", "redis_db", "bucket_originals", "bucket_thumbnails",
    "port", "auth_enabled", "log_level", "max_upload_bytes", "max_pixels", "presets",
    "allowed_formats", "job_timeout_seconds", "worker_threads", "worker_processes",
    "console_enabled", "rendition_presets_only", "rendition_cache_max_age_seconds",
    "rendition_processes", "webhook_max_attempts", "rate_limit_per_minute", "tenant_quota_bytes",
)


def test_service_defaults_are_the_operator_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("THUMBNAIL_")]:
        monkeypatch.delenv(name)
    standalone = Settings()
    env = by_name(desired())[("ConfigMap", "demo-config")]["data"]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    operated = Settings()
    for field in SHARED_DEFAULTS:
        ours, theirs = getattr(operated, field), getattr(standalone, field)
        if field == "allowed_formats":  # a set (the CRD's listType: set)
            ours, theirs = set(ours), set(theirs)
        assert ours == theirs, field


def test_renditions_and_webhooks_reach_the_service_and_turn_off_in_the_pods(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def settings_of(spec: dict[str, object]) -> Settings:
        objs = by_name(desired(spec))
        env = dict(objs[("ConfigMap", "demo-config")]["data"])
        env |= {k: base64.b64decode(v).decode()
                for k, v in objs[("Secret", "demo-credentials")]["data"].items()}
        (server,) = objs[("Deployment", "demo-server")]["spec"]["template"]["spec"]["containers"]
        env |= {e["name"]: e["value"] for e in server.get("env", []) if "value" in e}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return Settings()

    on = settings_of({"thumbnails": {
        "renditions": {"presetsOnly": True, "cacheMaxAgeSeconds": 600, "processes": 3},
        "webhooks": {"allowedNetworks": ["10.0.0.0/8", "fd00::/8"], "maxAttempts": 3}}})
    assert len(on.rendition_pairs) == 1 and len(on.rendition_pairs[0].key) == 32
    assert (on.rendition_presets_only, on.rendition_cache_max_age_seconds,
            on.rendition_processes) == (True, 600, 3)
    assert [str(n) for n in on.webhook_networks] == ["10.0.0.0/8", "fd00::/8"]
    assert on.webhook_max_attempts == 3 and len(on.webhook_secrets) == 1
    off = settings_of({"thumbnails": {"renditions": {"enabled": False},
                                      "webhooks": {"enabled": False}}})
    assert off.rendition_pairs == []  # the Secret keeps the pair; the pods do not see it
    assert off.webhook_secrets == []
