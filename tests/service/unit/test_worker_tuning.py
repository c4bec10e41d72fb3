"""Worker tuning settings (no services needed): render processes apart from worker threads,
and the threads and queue idle poll interval handed to Dramatiq by each worker process."""

from __future__ import annotations

import pytest

from thumbnail_service import cli
from thumbnail_service.queue import build_broker
from thumbnail_service.rendering.factory import build_renderer
from thumbnail_service.rendering.pool import IsolatedRenderer
from thumbnail_service.settings import Settings
from thumbnail_service.worker import supervisor
from thumbnail_service.worker.consumer import build_worker


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


def test_worker_processes_pass_threads_and_the_idle_poll_interval_to_dramatiq() -> None:
    settings = Settings(worker_idle_poll_ms=40, worker_threads=4, queue_name="q")
    broker = build_broker(settings)
    try:
        worker = build_worker(settings, broker)
        assert worker.worker_timeout == 40
        assert worker.worker_threads == 4
        assert worker.consumer_whitelist == {"q"}
    finally:
        broker.close()


def test_worker_command_is_the_supervisor(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []
    monkeypatch.setattr(supervisor, "main", lambda: ran.append("supervisor"))
    cli.worker_main()
    assert ran == ["supervisor"]


def test_idle_poll_default_is_100_ms() -> None:
    assert Settings().worker_idle_poll_ms == 100
