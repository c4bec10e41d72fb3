"""status.processing: the API's answer read, asked in the background, written once.

The real /healthz/detailed of a running service is asked on the real node
(tests/e2e/test_20_resilience.py); here the logic around it, with a fake answer.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.operator.unit.controller.fake_kube import FakeKube
from thumbnail_operator import constants as c
from thumbnail_operator.controller.events import EventRecorder
from thumbnail_operator.controller.processing import (
    HEALTH_PATH,
    Processing,
    ProcessingMonitor,
    from_health,
)
from thumbnail_operator.controller.reconcile import Reconciler
from thumbnail_operator.controller.workqueue import ResourceKey

NS = "media"
KEY = (NS, "demo")


def health(alive: int | None, since: str | None = None) -> dict[str, Any]:
    return {"status": "ok", "workers": {"status": "ok", "alive": alive,
                                        "oldest_queued_job_since": since}}


def test_live_workers_and_no_waiting_job() -> None:
    assert from_health(health(4)) == Processing("4 worker processes alive; no job waits", 4)


def test_no_live_worker_with_a_waiting_job_in_kubernetes_time() -> None:
    answer = from_health(health(0, "2026-12-07T10:15:30.123456+01:00"))
    assert answer.live_workers == 0
    assert answer.oldest_queued_job_since == "2026-12-07T09:15:30Z"  # UTC, seconds, Z
    assert answer.message.startswith("no live worker process: jobs are accepted but not")


def test_unknown_workers_and_a_malformed_time() -> None:
    answer = from_health(health(None, "yesterday"))
    assert answer == Processing(
        "worker processes unknown (Redis unreachable from the API); no job waits")
    assert answer.as_status() == {"liveWorkers": None, "oldestQueuedJobSince": None,
                                  "queuedJobs": None, "jobsPerMinute": None,
                                  "message": answer.message}


def test_the_backlog_and_the_recent_throughput() -> None:
    body = health(3)
    body["workers"].update(queued_jobs=42, jobs_finished_last_5m=61)
    answer = from_health(body)
    assert (answer.queued_jobs, answer.jobs_per_minute) == (42, 12.2)
    assert Processing.from_status(answer.as_status()) == answer


class Answers:
    """A fake `fetch`: the next answer per URL, and every URL asked."""

    def __init__(self) -> None:
        self.answer = Processing("1 worker process alive; no job waits", 1)
        self.asked: list[str] = []

    async def __call__(self, session: aiohttp.ClientSession, url: str) -> Processing:
        self.asked.append(url)
        return self.answer


async def settle() -> None:
    """Long enough for a probe task to run, much shorter than a round."""
    for _ in range(5):
        await asyncio.sleep(0.01)


async def test_monitor_asks_a_new_url_at_once_and_reports_only_changes() -> None:
    changed: list[ResourceKey] = []
    answers = Answers()
    monitor = ProcessingMonitor(changed.append, interval=0.5, fetch=answers)
    monitor.start()
    try:
        assert monitor.watch(KEY, "http://api/healthz") is None  # nothing known yet
        await settle()
        assert answers.asked == ["http://api/healthz"] and changed == [KEY]
        assert monitor.watch(KEY, "http://api/healthz") == answers.answer
        await asyncio.sleep(1.2)  # two more rounds, the same answer: no trigger
        assert len(answers.asked) >= 3 and changed == [KEY]
        answers.answer = Processing("no live worker process", 0)
        await asyncio.sleep(0.6)
        assert changed == [KEY, KEY]
        monitor.forget(KEY)
        asked = len(answers.asked)
        await asyncio.sleep(0.6)
        assert len(answers.asked) == asked and monitor.watch(KEY, None) is None
    finally:
        await monitor.stop()


async def test_a_resource_with_its_own_interval_is_asked_that_often() -> None:
    answers = Answers()
    monitor = ProcessingMonitor(lambda key: None, interval=30, fetch=answers)
    monitor.start()
    try:
        monitor.watch(KEY, "http://api/healthz")
        monitor.watch((NS, "autoscaled"), "http://autoscaled/healthz", 0.2)
        await asyncio.sleep(0.9)
        assert answers.asked.count("http://api/healthz") == 1
        assert 4 <= answers.asked.count("http://autoscaled/healthz") <= 6, answers.asked
        # A shorter interval for a resource already asked takes effect at once.
        monitor.watch(KEY, "http://api/healthz", 0.2)
        await asyncio.sleep(0.5)
        assert answers.asked.count("http://api/healthz") >= 3, answers.asked
    finally:
        await monitor.stop()


async def test_disabled_monitor_asks_nothing() -> None:
    answers = Answers()
    monitor = ProcessingMonitor(lambda key: None, interval=0, fetch=answers)
    monitor.start()
    monitor.watch(KEY, "http://api/healthz")
    await settle()
    assert not monitor.enabled and answers.asked == []
    await monitor.stop()


class StubMonitor(ProcessingMonitor):
    """What a pass asks the monitor, answered without a network."""

    def __init__(self, answer: Processing | None) -> None:
        super().__init__(lambda key: None, interval=30)
        self.answer = answer
        self.watched: list[str | None] = []

    def watch(
        self, key: ResourceKey, url: str | None, interval: float | None = None
    ) -> Processing | None:
        self.watched.append(url)
        self.interval = interval
        return self.answer if url else None


def pass_with(answer: Processing | None, *, server_ready: bool) -> tuple[FakeKube, StubMonitor,
                                                                         Reconciler]:
    kube, monitor = FakeKube(), StubMonitor(answer)
    kube.put({
        "apiVersion": c.API_VERSION, "kind": c.KIND,
        "metadata": {"name": "demo", "namespace": NS, "uid": "cr-uid", "generation": 1},
        "spec": {},
    })
    reconciler = Reconciler(kube, EventRecorder(kube), processing=monitor)  # type: ignore[arg-type]
    reconciler.reconcile(NS, "demo")
    if server_ready:
        kube.objects[("Deployment", NS, "demo-server")]["status"] = {"readyReplicas": 1}
        reconciler.reconcile(NS, "demo")
    return kube, monitor, reconciler


def test_pass_asks_only_while_a_server_is_ready() -> None:
    kube, monitor, _ = pass_with(Processing("2 worker processes alive; no job waits", 2),
                                 server_ready=False)
    assert monitor.watched == [None]
    processing = kube.objects[(c.KIND, NS, "demo")]["status"]["processing"]
    assert processing == {"message": "not observed: no API server is ready"}


@pytest.mark.parametrize("answer", [
    Processing("no live worker process", 0, "2026-12-07T09:15:30Z"),
    Processing("worker processes unknown"),  # None fields: removed, not rewritten each pass
])
def test_pass_writes_the_answer_once(answer: Processing) -> None:
    kube, monitor, reconciler = pass_with(answer, server_ready=True)
    assert monitor.watched[-1] == f"http://demo-server.{NS}.svc:8000{HEALTH_PATH}"
    stored = kube.objects[(c.KIND, NS, "demo")]["status"]["processing"]
    assert stored == {k: v for k, v in answer.as_status().items() if v is not None}
    assert not reconciler.reconcile(NS, "demo").status_written


def test_restarted_operator_keeps_the_last_answer_until_it_asked_again() -> None:
    answer = Processing("2 worker processes alive; no job waits", 2)
    kube, monitor, reconciler = pass_with(answer, server_ready=True)
    monitor.answer = None  # a new operator process: nothing asked yet
    assert not reconciler.reconcile(NS, "demo").status_written
    assert kube.objects[(c.KIND, NS, "demo")]["status"]["processing"] == {
        "liveWorkers": 2, "message": answer.message}
