"""Cost-aware worker autoscaling: the sizing function, the damper, and a pass that applies them.

The same loop against a real service on the real node: tests/e2e/test_55_autoscaling.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.operator.unit.controller.fake_kube import FakeKube
from tests.operator.unit.controller.test_processing import StubMonitor
from thumbnail_operator import constants as c
from thumbnail_operator.api.v1 import Autoscaling, Workers
from thumbnail_operator.controller.autoscaling import (
    MIN_SAMPLES,
    PRIOR_SECONDS_PER_UNIT,
    Damper,
    Demand,
    FormatDemand,
    decide,
    recommend,
)
from thumbnail_operator.controller.events import EventRecorder
from thumbnail_operator.controller.processing import Processing
from thumbnail_operator.controller.reconcile import Reconciler

NS = "media"
POLICY = Autoscaling(min_replicas=0, max_replicas=10, target_queue_seconds=10)


def demand(*formats: tuple[str, int, float, float | None], overhead: float = 0.0) -> Demand:
    """(format, pending jobs, pending units, learned seconds per unit) per format."""
    return Demand(tuple(
        FormatDemand(name, jobs, units, MIN_SAMPLES if rate is not None else 0, rate)
        for name, jobs, units, rate in formats), overhead)


def size(work: Demand, policy: Autoscaling = POLICY, **kwargs: Any) -> int:
    arguments: dict[str, Any] = {"slots": 2, "running": 0, "ready": 0,
                                 "oldest_wait_seconds": None, **kwargs}
    return recommend(policy, work, **arguments).replicas


def test_idle_means_min_replicas() -> None:
    assert size(demand()) == 0
    assert size(demand(("jpeg", 0, 0.0, 0.01))) == 0
    assert size(demand(), Autoscaling(min_replicas=2, max_replicas=5)) == 2


def test_jobs_are_weighed_by_their_cost_not_counted() -> None:
    # 40 small JPEGs (0.3 MP x 3 sizes each, 0.01 s per unit): 0.36 worker-seconds.
    small = demand(("jpeg", 40, 40 * 0.9, 0.01))
    # 8 large AVIFs (24 MP x 1 size, 0.25 s per unit): 48 worker-seconds.
    large = demand(("avif", 8, 8 * 24.0, 0.25))
    assert size(small) == 1  # an item-count rule would run 20 workers (2 slots each)
    assert size(large) == 3  # 48 s / (2 slots x 10 s) -> 3, although there are 5x fewer jobs
    mixed = demand(("jpeg", 40, 36.0, 0.01), ("avif", 8, 192.0, 0.25))
    assert size(mixed) == 3


def test_a_job_runs_in_one_slot_so_more_workers_than_jobs_idle() -> None:
    huge = demand(("avif", 3, 3 * 100.0, 1.0))  # 300 worker-seconds, but only 3 jobs
    assert size(huge) == 2  # ceil(3 jobs / 2 slots)
    assert size(huge, slots=1) == 3


def test_bounds_and_at_least_one_worker_while_a_job_waits() -> None:
    assert size(demand(("jpeg", 1, 0.01, 0.01))) == 1
    found = recommend(Autoscaling(max_replicas=2), demand(("avif", 50, 1000.0, 0.25)), slots=1,
                      running=0, ready=0, oldest_wait_seconds=None)
    assert found.replicas == 2 and "maxReplicas 2" in found.reason
    assert size(demand(("jpeg", 1, 0.01, 0.01)), Autoscaling(min_replicas=3,
                                                             max_replicas=5)) == 3


def test_unlearned_formats_use_the_prior_and_the_overhead_counts_per_job() -> None:
    unlearned = Demand((FormatDemand("avif", 4, 40.0, MIN_SAMPLES - 1, 0.001),), None)
    expected = 40.0 * PRIOR_SECONDS_PER_UNIT["avif"] + 4 * 0.2  # the prior overhead
    assert unlearned.work_seconds == pytest.approx(expected)
    assert demand(("webp", 10, 0.0, 0.01), overhead=1.5).work_seconds == pytest.approx(15.0)
    unknown = Demand((FormatDemand("jxl", 1, 10.0, 0, None),), 0.0)
    assert unknown.work_seconds == pytest.approx(10 * max(PRIOR_SECONDS_PER_UNIT.values()))


def test_a_late_queue_with_every_worker_ready_adds_one_worker() -> None:
    work = demand(("jpeg", 20, 20.0, 0.01))  # the estimate says one worker suffices
    assert size(work, running=1, ready=1, oldest_wait_seconds=5) == 1
    assert size(work, running=1, ready=1, oldest_wait_seconds=30) == 2
    # Still starting (not ready): waiting longer is expected, no extra worker.
    assert size(work, running=2, ready=1, oldest_wait_seconds=30) == 1
    # Never beyond one worker per two jobs' slots.
    assert size(demand(("jpeg", 2, 2.0, 0.01)), running=1, ready=1, oldest_wait_seconds=30) == 1


def test_answer_parsing_rejects_what_it_cannot_read() -> None:
    body = {"formats": [{"format": "avif", "pending_jobs": 2, "pending_megapixel_renders": 48.0,
                         "sampled_jobs": 7, "render_seconds_per_megapixel_render": 0.3}],
            "overhead_seconds_per_job": 0.12}
    parsed = Demand.from_health(body)
    assert parsed == Demand((FormatDemand("avif", 2, 48.0, 7, 0.3),), 0.12)
    assert Demand.from_health(None) is None  # an API from before autoscaling
    assert Demand.from_health({"formats": [{"format": "avif"}]}) is None


def test_damper_grows_at_once_and_shrinks_after_the_delay() -> None:
    damper, key = Damper(), (NS, "demo")
    assert damper.settle(key, 4, running=0, now=0, delay=60).replicas == 4  # up: at once
    held = damper.settle(key, 1, running=4, now=10, delay=60)
    assert held.replicas == 4 and held.recheck_after == pytest.approx(50)
    assert damper.settle(key, 2, running=4, now=59, delay=60).replicas == 4
    after = damper.settle(key, 0, running=4, now=61, delay=60)  # the 4 aged out; the 2 not
    assert after.replicas == 2 and after.recheck_after == pytest.approx(58)
    assert damper.settle(key, 0, running=2, now=120, delay=60) .replicas == 0
    assert damper.settle(key, 0, running=0, now=121, delay=60).recheck_after is None


def test_damper_holds_what_runs_after_an_operator_restart() -> None:
    key = (NS, "demo")
    assert Damper().settle(key, 0, running=3, now=100, delay=60).replicas == 3
    assert Damper().settle(key, 0, running=3, now=100, delay=0).replicas == 0


def test_unknown_demand_holds_what_runs_within_bounds() -> None:
    workers = Workers(autoscaling=Autoscaling(min_replicas=1, max_replicas=3))
    held = decide((NS, "demo"), workers, None, unknown_why="the API did not answer",
                  running=5, ready=5, oldest_wait_seconds=None, damper=Damper(), now=0)
    assert held.replicas == 3 and "the API did not answer" in held.message


# -- a pass of the reconciler ---------------------------------------------------------------

AUTOSCALED = {"workers": {"autoscaling": {"minReplicas": 0, "maxReplicas": 4,
                                          "targetQueueSeconds": 10,
                                          "scaleDownDelaySeconds": 0}}}


def answer(*formats: tuple[str, int, float, float | None]) -> Processing:
    jobs = sum(f[1] for f in formats)
    return Processing(f"1 worker process alive; {jobs} waiting", 1, None, jobs, None,
                      demand(*formats))


def reconciler_with(spec: dict[str, Any], processing: Processing | None) -> tuple[
        FakeKube, StubMonitor, Reconciler]:
    kube, monitor = FakeKube(), StubMonitor(processing)
    kube.put({
        "apiVersion": c.API_VERSION, "kind": c.KIND,
        "metadata": {"name": "demo", "namespace": NS, "uid": "cr-uid", "generation": 1},
        "spec": spec,
    })
    reconciler = Reconciler(kube, EventRecorder(kube), processing=monitor,  # type: ignore[arg-type]
                            autoscaling_probe_seconds=5.0)
    reconciler.reconcile(NS, "demo")
    kube.objects[("Deployment", NS, "demo-server")]["status"] = {"readyReplicas": 1}
    reconciler.reconcile(NS, "demo")
    return kube, monitor, reconciler


def workers_of(kube: FakeKube) -> int:
    return int(kube.objects[("Deployment", NS, "demo-worker")]["spec"]["replicas"])


def test_a_pass_sizes_the_workers_from_the_answer_and_says_why() -> None:
    kube, monitor, reconciler = reconciler_with(AUTOSCALED, answer(("avif", 8, 192.0, 0.25)))
    assert monitor.interval == 5.0  # asked more often than the 30 s of other resources
    assert workers_of(kube) == 3
    status = kube.objects[(c.KIND, NS, "demo")]["status"]["autoscaling"]
    assert status["replicas"] == 3 and status["pendingJobs"] == 8, status
    assert status["expectedWorkSeconds"] == pytest.approx(48.0)
    assert "start each within 10s" in status["message"]
    scaled = [e["message"] for e in kube.events if e["reason"] == "ScaledWorkers"]
    assert scaled and scaled[-1].startswith("0 -> 3 workers"), scaled
    # A budget, as the workers may grow past one, whatever runs now.
    assert ("PodDisruptionBudget", NS, "demo-worker") in kube.objects

    monitor.answer = answer()  # drained; no delay configured: down to zero at once
    reconciler.reconcile(NS, "demo")
    assert workers_of(kube) == 0
    status = kube.objects[(c.KIND, NS, "demo")]["status"]
    assert status["autoscaling"]["lastScaleTime"]
    assert status["processing"]["message"] == "no worker runs: scaled to zero while no job waits"


def test_a_held_scale_down_asks_for_a_pass_when_it_may_happen() -> None:
    spec = {"workers": {"autoscaling": {**AUTOSCALED["workers"]["autoscaling"],
                                        "scaleDownDelaySeconds": 90}}}
    kube, monitor, reconciler = reconciler_with(spec, answer(("avif", 8, 192.0, 0.25)))
    monitor.answer = answer()
    outcome = reconciler.reconcile(NS, "demo")
    assert workers_of(kube) == 3
    assert outcome.recheck_after is not None and 85 < outcome.recheck_after <= 90
    assert "keeping 3" in kube.objects[(c.KIND, NS, "demo")]["status"]["autoscaling"]["message"]


def test_without_an_answer_nothing_moves_and_turning_it_off_clears_the_status() -> None:
    kube, monitor, reconciler = reconciler_with(AUTOSCALED, None)
    assert workers_of(kube) == 0  # created at minReplicas: nothing known to need more
    message = kube.objects[(c.KIND, NS, "demo")]["status"]["autoscaling"]["message"]
    assert message.startswith("holding 0 workers: the pending work is not known"), message
    cr = kube.objects[(c.KIND, NS, "demo")]
    cr["spec"] = {"workers": {"replicas": 2}}
    reconciler.reconcile(NS, "demo")
    assert workers_of(kube) == 2 and "autoscaling" not in kube.objects[(c.KIND, NS, "demo")][
        "status"]
    assert monitor.interval is None
