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
