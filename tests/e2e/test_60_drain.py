"""Draining a node (issue 15): the sample's two workers spread over the two real nodes, and
`kubectl drain` of a node that runs both never leaves the service without a ready worker:
the PodDisruptionBudget (`maxUnavailable: 1`) lets the second eviction through only once the
first one's replacement is ready on the other node. Jobs submitted across the drain finish.

The sample's data stores live on one node (their volumes are local to it; tests/e2e/
conftest.py pins them there); the other one is drained. To put both workers on it first, the
data stores' node is cordoned and its worker deleted (the Deployment recreates it on the
other node), then uncordoned. Without the budget, the drain evicts both workers at once and
the sampled count of ready workers drops to zero: that is what the test would catch.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    DATA_STORE_LABEL,
    IMAGE,
    NAMESPACE,
    E2ECluster,
    Service,
    api_key,
    ready_pods,
    schedulable_nodes,
)
from thumbnail_substrate.testing import wait_for

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
JOBS = 12


class _ReadyWorkers(threading.Thread):
    """Samples the ready worker pods every 0.5 s until stopped (at most 600 s)."""

    def __init__(self, cluster: E2ECluster, service: Service) -> None:
        super().__init__(daemon=True)
        self.cluster, self.service = cluster, service
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 600
        while not self.stop.is_set() and time.monotonic() < deadline:
            ready = ready_pods(self.cluster, self.service, "worker")
            self.samples.append((time.monotonic(), len(ready)))
            self.stop.wait(0.5)


def _node_of(pod: Obj) -> str:
    return str(pod["spec"].get("nodeName", ""))


@pytest.mark.timeout(900)
def test_a_drain_never_takes_both_workers_and_loses_no_job(
    e2e_cluster: E2ECluster, service: Service
) -> None:
    nodes = schedulable_nodes(e2e_cluster)
    if len(nodes) < 2:
        pytest.skip(f"a drain needs two nodes that take pods; this cluster has {nodes}")
    home = e2e_cluster.get("nodes", "-l", f"{DATA_STORE_LABEL}=true")["items"][0]
    stores, drained = home["metadata"]["name"], next(n for n in nodes if n != home["metadata"][
        "name"])
    assert service.spec["workers"]["replicas"] == 2
    budget = e2e_cluster.get("-n", NAMESPACE, "pdb", f"{service.name}-worker")
    assert budget["spec"]["maxUnavailable"] == 1

    def two_ready(on: str | None = None) -> list[Obj] | None:
        ready = ready_pods(e2e_cluster, service, "worker")
        return ready if len(ready) == 2 and all(
            on in (None, _node_of(p)) for p in ready) else None

    # The default spread (maxSkew 1 over hostnames, soft) put one worker on each node.
    workers = wait_for(two_ready, timeout=180, what="two ready workers")
    assert {_node_of(p) for p in workers} == {stores, drained}, [_node_of(p) for p in workers]
    # Both onto the node to drain.
    e2e_cluster.kubectl("cordon", stores)
    try:
        (moved,) = [p for p in workers if _node_of(p) == stores]
        e2e_cluster.kubectl("-n", NAMESPACE, "delete", "pod", moved["metadata"]["name"])
        wait_for(lambda: two_ready(on=drained), timeout=180,
                 what=f"both workers ready on {drained}")
    finally:
        e2e_cluster.kubectl("uncordon", stores)

    headers = {"X-API-Key": api_key(e2e_cluster, service)}
    sampler = _ReadyWorkers(e2e_cluster, service)
    with httpx.Client(base_url=e2e_cluster.api_url, headers=headers, timeout=30) as http:
        ids: list[str] = []

        def submit(count: int) -> None:
            for _ in range(count):
                answer = http.post("/v1/jobs", files={"file": ("a.jpg", IMAGE.read_bytes())})
                assert answer.status_code == 202, answer.text
                ids.append(answer.json()["id"])

        submit(JOBS // 2)
        sampler.start()
        started = time.monotonic()
        try:
            e2e_cluster.kubectl("drain", drained, "--ignore-daemonsets",
                                "--delete-emptydir-data", "--timeout=300s", timeout=330)
            took = time.monotonic() - started
            # Both evicted workers' replacements run on the other node.
            wait_for(lambda: two_ready(on=stores), timeout=180,
                     what=f"both workers ready on {stores} after the drain")
        finally:
            sampler.stop.set()
            sampler.join(10)
            e2e_cluster.kubectl("uncordon", drained)
        minimum = min(ready for _, ready in sampler.samples)
        print(f"\n[drain] {drained} (both workers) drained in {took:.1f}s; ready workers "
              f"sampled {len(sampler.samples)} times, never fewer than {minimum}")
        assert minimum >= 1, sampler.samples

        def ready() -> bool:
            status = e2e_cluster.get("-n", NAMESPACE, "thumbnailservice", service.name)["status"]
            return any(c["type"] == "Ready" and c["status"] == "True"
                       for c in status["conditions"])

        # The server, if it ran there, came back too; every job finishes.
        wait_for(ready, timeout=300, what="the service Ready again", interval=2)
        submit(JOBS - JOBS // 2)

        def finished() -> list[Obj] | None:
            jobs = [http.get(f"/v1/jobs/{i}").json() for i in ids]
            return jobs if all(j["status"] in ("succeeded", "failed") for j in jobs) else None

        jobs = wait_for(finished, timeout=300, what=f"{JOBS} jobs across the drain",
                        interval=2, ignore=(httpx.HTTPError,))
    assert [j["status"] for j in jobs] == ["succeeded"] * JOBS, jobs
