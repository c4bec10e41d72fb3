"""Cost-aware autoscaling on real pods (issue 15): idle workers go to zero, a burst of jobs
brings up as many as its cost needs, and after the scale-down delay they go back to zero,
with every job of the burst done exactly once.

The sample gets `workers.autoscaling` {0..3 workers, a 5 s target, 20 s scale-down delay};
the burst is AVIF renders of 12 MP uploads (the expensive kind). The Deployment's replica
count is sampled every second, so the test sees 0 -> N -> 0 and when each step happened.
At the end the sample's fixed worker count is restored for the modules after this one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import pyvips

from tests.e2e.conftest import (
    NAMESPACE,
    E2ECluster,
    Service,
    api_key,
    pods,
    ready_pods,
    selector,
)
from thumbnail_substrate.testing import KubectlError, wait_for

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
MAX_WORKERS = 3
TARGET_SECONDS = 5
DELAY_SECONDS = 20
BURST = 24
SIZES = "small,medium,large"


def _large_jpeg() -> bytes:
    """A 12 MP JPEG: what decoding costs depends on its pixels, not on what they show."""
    image = pyvips.Image.xyz(4000, 3000).cast("uchar")
    return bytes(image.bandjoin(image[0]).jpegsave_buffer(Q=90))


def _autoscale(cluster: E2ECluster, service: Service, autoscaling: Obj | None,
               replicas: int | None = None) -> None:
    workers: Obj = {"autoscaling": autoscaling}
    if replicas is not None:
        workers["replicas"] = replicas
    cluster.kubectl("-n", NAMESPACE, "patch", "thumbnailservice", service.name, "--type=merge",
                    "-p", json.dumps({"spec": {"workers": workers}}))


def _deployment_replicas(cluster: E2ECluster, service: Service) -> int:
    deployment = cluster.get("-n", NAMESPACE, "deployment", f"{service.name}-worker")
    return int(deployment["spec"].get("replicas", 0))


@pytest.fixture(scope="module")
def autoscaled(e2e_cluster: E2ECluster, service: Service) -> Iterator[None]:
    _autoscale(e2e_cluster, service, {"minReplicas": 0, "maxReplicas": MAX_WORKERS,
                                      "targetQueueSeconds": TARGET_SECONDS,
                                      "scaleDownDelaySeconds": DELAY_SECONDS})
    try:
        yield
    finally:
        _autoscale(e2e_cluster, service, None, service.spec["workers"]["replicas"])
        wanted = service.spec["workers"]["replicas"]
        wait_for(lambda: len(ready_pods(e2e_cluster, service, "worker")) == wanted
                 and len(pods(e2e_cluster, selector(service, "worker"))) == wanted,
                 timeout=240, what=f"{wanted} fixed workers again", interval=2)


@pytest.mark.timeout(900)
def test_a_burst_scales_the_workers_from_zero_and_back_losing_no_job(
    e2e_cluster: E2ECluster, service: Service, autoscaled: None
) -> None:
    # Idle: to zero once the delay has passed (what ran before is held for one delay).
    started = time.monotonic()
    wait_for(lambda: _deployment_replicas(e2e_cluster, service) == 0
             and not pods(e2e_cluster, selector(service, "worker")),
             timeout=DELAY_SECONDS + 120, what="the idle workers scaled to zero", interval=1)
    print(f"\n[autoscaling] idle -> 0 workers after {time.monotonic() - started:.1f}s")

    def reported_idle() -> Obj | None:
        # The status follows the Deployment's own status, which lags its pods a little.
        status: Obj = e2e_cluster.get("-n", NAMESPACE, "thumbnailservice", service.name)[
            "status"]
        idle = status["autoscaling"]["replicas"] == 0 and status["workerReplicas"] == "0/0"
        return status if idle else None

    wait_for(reported_idle, timeout=60, what="status: autoscaled to 0 workers, 0/0 ready",
             interval=1)

    # `kubectl scale` would be undone by the autoscaler: the API server refuses it instead.
    current = e2e_cluster.get("-n", NAMESPACE, "thumbnailservice", service.name)["spec"]
    other = current["workers"]["replicas"] + 1  # the same number would change nothing
    with pytest.raises(KubectlError, match="replicas cannot change while autoscaling is set"):
        e2e_cluster.kubectl("-n", NAMESPACE, "scale", f"thumbnailservice/{service.name}",
                            f"--replicas={other}")

    data = _large_jpeg()
    timeline: list[tuple[float, int, int]] = []  # (seconds, asked for, ready)
    headers = {"X-API-Key": api_key(e2e_cluster, service)}
    with httpx.Client(base_url=e2e_cluster.api_url, headers=headers, timeout=60) as http:
        burst = time.monotonic()
        ids = []
        for _ in range(BURST):
            submitted = http.post("/v1/jobs", files={"file": ("big.jpg", data, "image/jpeg")},
                                  data={"sizes": SIZES, "format": "avif"})
            assert submitted.status_code == 202, submitted.text
            ids.append(submitted.json()["id"])
        submitted_in = time.monotonic() - burst

        def jobs() -> list[Obj]:
            return [http.get(f"/v1/jobs/{job_id}").json() for job_id in ids]

        finished_at: float | None = None
        deadline = burst + 600
        while time.monotonic() < deadline:
            asked = _deployment_replicas(e2e_cluster, service)
            ready = len(ready_pods(e2e_cluster, service, "worker"))
            timeline.append((round(time.monotonic() - burst, 1), asked, ready))
            if finished_at is None:
                states = jobs()
                if all(j["status"] in ("succeeded", "failed") for j in states):
                    finished_at = time.monotonic()
            elif asked == 0:
                break
            time.sleep(1)
        final = jobs()

    peak = max(asked for _, asked, _ in timeline)
    changes = [point for i, point in enumerate(timeline)
               if i == 0 or point[1:] != timeline[i - 1][1:]]
    print(f"[autoscaling] {BURST} jobs submitted in {submitted_in:.1f}s; (seconds, asked, "
          f"ready) at each change: {changes}")
    assert finished_at is not None, f"the burst did not finish: {changes}"
    drained = finished_at - burst
    down = timeline[-1][0] - drained
    print(f"[autoscaling] peak {peak} workers; all jobs finished after {drained:.1f}s; "
          f"back to 0 workers {down:.1f}s later")
    # 0 -> N: more than one worker for this burst's cost, never more than maxReplicas.
    assert timeline[0][1] in (0, 1), changes  # still zero, or the first pass already ran
    assert 2 <= peak <= MAX_WORKERS, changes
    # -> 0, but only once the delay had passed since the last pending job.
    assert timeline[-1][1] == 0, f"the workers did not go back to zero: {changes}"
    assert down >= DELAY_SECONDS - 7, changes  # the operator asks every 5 s
    # No job lost: every one succeeded, each with its three thumbnails, once.
    assert [j["status"] for j in final] == ["succeeded"] * BURST, final
    assert all(sorted(t["name"] for t in j["thumbnails"]) == ["large", "medium", "small"]
               for j in final), final

    status = e2e_cluster.get("-n", NAMESPACE, "thumbnailservice", service.name)["status"]
    print(f"[autoscaling] status.autoscaling: {status['autoscaling']}")
    assert status["autoscaling"]["replicas"] == 0 and status["autoscaling"]["lastScaleTime"]
    events = e2e_cluster.get("-n", NAMESPACE, "events", "--field-selector",
                             f"involvedObject.name={service.name},reason=ScaledWorkers")
    messages = [e["message"] for e in events["items"]]
    assert any(m.startswith("0 -> ") for m in messages), messages
    assert any(" -> 0 workers" in m for m in messages), messages
