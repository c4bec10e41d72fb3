"""Worker tuning settings (no services needed): render processes apart from worker threads,
and the queue's idle poll interval handed to Dramatiq."""

from __future__ import annotations

from typing import Any

import pytest

from thumbnail_service import cli
from thumbnail_service.rendering.factory import build_renderer
from thumbnail_service.rendering.pool import IsolatedRenderer
from thumbnail_service.settings import Settings


def test_render_processes_default_to_one_per_worker_thread() -> None:
    assert Settings(worker_threads=3).render_concurrency == 3


def test_render_processes_can_be_fewer_than_threads_but_never_more() -> None:
    assert Settings(worker_threads=4, render_processes=2).render_concurrency == 2
    assert Settings(worker_threads=2, render_processes=5).render_concurrency == 2


def test_render_processes_reject_negative() -> None:
    with pytest.raises(ValueError, match="render_processes"):
        Settings(render_processes=-1)


def test_renderer_starts_render_processes_children() -> None:
    renderer = build_renderer(Settings(worker_threads=4, render_processes=2))
    try:
        assert isinstance(renderer, IsolatedRenderer)
        assert len(renderer.pids) == 2
    finally:
        renderer.close()


def test_worker_command_passes_the_idle_poll_interval_to_dramatiq(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    captured: dict[str, Any] = {}

    def fake_execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        captured.update(path=path, argv=argv, env=env)

    monkeypatch.setattr(cli.os, "execve", fake_execve)
    monkeypatch.setenv("THUMBNAIL_WORKER_IDLE_POLL_MS", "40")
    monkeypatch.setenv("THUMBNAIL_WORKER_THREADS", "4")
    cli.worker_main()
    assert captured["env"]["dramatiq_worker_timeout"] == "40"
    assert captured["argv"][captured["argv"].index("--threads") + 1] == "4"


def test_idle_poll_default_is_100_ms() -> None:
    assert Settings().worker_idle_poll_ms == 100
