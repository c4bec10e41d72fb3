"""How the worker builds its renderer from THUMBNAIL_RENDER_* settings (no services needed)."""

from __future__ import annotations

import pytest

from thumbnail_service.imaging import RenderOptions, SizeSpec
from thumbnail_service.rendering.factory import build_renderer
from thumbnail_service.rendering.inline import InlineRenderer
from thumbnail_service.rendering.pool import IsolatedRenderer
from thumbnail_service.settings import Settings

from .. import samples

OPTIONS = RenderOptions((SizeSpec("t", 32, 32),))


def test_process_isolation_is_the_default_with_one_child_per_worker_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("THUMBNAIL_DATABASE_PASSWORD", "s3cret")
    settings = Settings(worker_threads=3, render_memory_limit_bytes=2**31)
    assert settings.render_isolation == "process"
    renderer = build_renderer(settings)
    try:
        assert isinstance(renderer, IsolatedRenderer)
        assert len(renderer.pids) == 3
        thumbs = renderer.render(
            samples.jpeg(64, 48),
            OPTIONS,
            allowed=settings.allowed_format_set,
            max_pixels=settings.max_pixels,
            timeout_seconds=settings.job_timeout_seconds,
        )
        assert [(t.width, t.height) for t in thumbs] == [(32, 24)]
        for pid in renderer.pids:
            with open(f"/proc/{pid}/environ", "rb") as f:
                assert b"s3cret" not in f.read()  # credentials stay in the worker
    finally:
        renderer.close()


def test_inline_isolation_renders_in_process() -> None:
    renderer = build_renderer(Settings(render_isolation="inline"))
    assert isinstance(renderer, InlineRenderer)
    thumbs = renderer.render(
        samples.jpeg(64, 48),
        OPTIONS,
        allowed=samples.ALL_FORMATS,
        max_pixels=10**6,
        timeout_seconds=5,
    )
    assert thumbs[0].width == 32


@pytest.mark.parametrize(
    "env",
    [
        {"THUMBNAIL_RENDER_ISOLATION": "thread"},
        {"THUMBNAIL_RENDER_KILL_GRACE_SECONDS": "0"},
        {"THUMBNAIL_RENDER_MEMORY_LIMIT_BYTES": "-1"},
    ],
)
def test_invalid_render_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=next(iter(env)).removeprefix("THUMBNAIL_").lower()):
        Settings()
