"""Draining a node (issue 15): the sample's two workers are spread over the two real nodes,
and `kubectl drain` of a node that runs one never leaves the service without a ready worker
(the PodDisruptionBudget evicts one at a time); jobs submitted across the drain all finish.

The real node of the suite has two nodes (Kind's default layout); on a cluster with fewer
the module is skipped, saying so. The node drained is one with a worker and, where there is
a choice, without PostgreSQL or MinIO: their volumes are local to a node (as Kind's
local-path volumes are), so their pods could not move before the node is uncordoned.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    IMAGE,
    NAMESPACE,
    E2ECluster,
    Service,
    api_key,
    pods,
    ready_pods,
    selector,
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
    nodes = [n["metadata"]["name"] for n in e2e_cluster.get("nodes")["items"]]
    if len(nodes) < 2:
        pytest.skip(f"a drain needs two nodes; this cluster has {nodes}")
    assert service.spec["workers"]["replicas"] == 2
    def two_ready() -> list[Obj] | None:
        ready = ready_pods(e2e_cluster, service, "worker")
        return ready if len(ready) == 2 else None

    workers = wait_for(two_ready, timeout=180, what="two ready workers")
    # The default spread (maxSkew 1 over hostnames) put one on each node.
    assert len({_node_of(p) for p in workers}) == 2, [_node_of(p) for p in workers]
    budget = e2e_cluster.get("-n", NAMESPACE, "pdb", f"{service.name}-worker")
    assert budget["spec"]["maxUnavailable"] == 1
    stateful = {_node_of(p) for c in ("postgresql", "minio")
                for p in pods(e2e_cluster, selector(service, c))}
    candidates = [_node_of(p) for p in workers]
    node = next((n for n in candidates if n not in stateful), candidates[0])

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
            e2e_cluster.kubectl("drain", node, "--ignore-daemonsets", "--delete-emptydir-data",
                                "--timeout=300s", timeout=330)
            drained = time.monotonic() - started
            # The evicted worker's replacement runs on the other node.
            moved = wait_for(two_ready, timeout=180, what="two ready workers after the drain")
        finally:
            sampler.stop.set()
            sampler.join(10)
            e2e_cluster.kubectl("uncordon", node)
        assert {_node_of(p) for p in moved} == set(nodes) - {node}, moved
        minimum = min(ready for _, ready in sampler.samples)
        print(f"\n[drain] {node} drained in {drained:.1f}s; ready workers sampled "
              f"{len(sampler.samples)} times, never fewer than {minimum}")
        assert minimum >= 1, sampler.samples

        # The service comes back whole on the uncordoned node; every job finishes.
        def ready() -> bool:
            status = e2e_cluster.get("-n", NAMESPACE, "thumbnailservice", service.name)["status"]
            return any(c["type"] == "Ready" and c["status"] == "True"
                       for c in status["conditions"])

        wait_for(ready, timeout=300, what="the service Ready again", interval=2)
        submit(JOBS - JOBS // 2)

        def finished() -> list[Obj] | None:
            jobs = [http.get(f"/v1/jobs/{i}").json() for i in ids]
            return jobs if all(j["status"] in ("succeeded", "failed") for j in jobs) else None

        jobs = wait_for(finished, timeout=300, what=f"{JOBS} jobs across the drain",
                        interval=2, ignore=(httpx.HTTPError,))
    assert [j["status"] for j in jobs] == ["succeeded"] * JOBS, jobs
