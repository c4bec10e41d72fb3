"""Day-2 changes on real pods: a new preset rolls the server and worker pods and new jobs
use it; `kubectl scale tns/NAME --replicas=3` gives three worker pods that all take jobs."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.e2e.conftest import (
    IMAGE,
    NAMESPACE,
    E2ECluster,
    Service,
    api_key,
    ready_pods,
    submit_and_wait,
)
from thumbnail_substrate.testing import wait_for

pytestmark = pytest.mark.e2e

TINY = {"name": "tiny", "width": 48, "height": 48}



def test_new_preset_rolls_server_and_workers_and_is_used(
    e2e_cluster: E2ECluster, service: Service
) -> None:
    before = {
        c: {p["metadata"]["uid"] for p in ready_pods(e2e_cluster, service, c)}
        for c in ("server", "worker")
    }
    presets = [*service.spec["thumbnails"]["presets"], TINY]
    patch = {"spec": {"thumbnails": {"presets": presets}}}
    e2e_cluster.kubectl("-n", NAMESPACE, "patch", "thumbnailservice", service.name,
                        "--type=merge", "-p", json.dumps(patch))
    expected = {"server": service.spec["server"]["replicas"],
                "worker": service.spec["workers"]["replicas"]}

    def rolled() -> bool:
        for component, count in expected.items():
            now = {p["metadata"]["uid"] for p in ready_pods(e2e_cluster, service, component)}
            if len(now) != count or now & before[component]:
                return False
        return True

    wait_for(rolled, timeout=300, what="server and worker pods to roll", interval=2)
    with httpx.Client(base_url=e2e_cluster.api_url, timeout=30,
                      headers={"X-API-Key": api_key(e2e_cluster, service)}) as http:
        job = wait_for(lambda: submit_and_wait(http, IMAGE.read_bytes()), timeout=240,
                       what="a job after the rollout", ignore=(httpx.HTTPError, AssertionError))
    assert job["status"] == "succeeded", job
    tiny = {t["name"]: t for t in job["thumbnails"]}["tiny"]
    assert max(tiny["width"], tiny["height"]) <= TINY["width"], tiny


def test_scale_subresource_gives_three_working_worker_pods(
    e2e_cluster: E2ECluster, service: Service
) -> None:
    e2e_cluster.kubectl("-n", NAMESPACE, "scale", f"thumbnailservice/{service.name}",
                        "--replicas=3")
    workers = wait_for(
        lambda: (w := ready_pods(e2e_cluster, service, "worker")) and len(w) == 3 and w,
        timeout=300, what="three ready worker pods", interval=2,
    )
    names = [p["metadata"]["name"] for p in workers]
    worked: set[str] = set()
    data = IMAGE.read_bytes()
    with httpx.Client(base_url=e2e_cluster.api_url, timeout=30,
                      headers={"X-API-Key": api_key(e2e_cluster, service)}) as http:
        # Bounded: at most 8 rounds of 6 concurrent-ish jobs until every pod took one.
        for _ in range(8):
            ids = [http.post("/v1/jobs", files={"file": ("a.jpg", data, "image/jpeg")})
                   .json()["id"] for _ in range(6)]
            for job_id in ids:
                wait_for(lambda j=job_id: http.get(f"/v1/jobs/{j}").json()["status"]
                         == "succeeded", timeout=120, what=f"job {job_id}", interval=0.5)
            for name in names:
                log = e2e_cluster.kubectl("-n", NAMESPACE, "logs", name)
                if re.search(r"job \S+: succeeded", log):
                    worked.add(name)
            if worked == set(names):
                break
    assert worked == set(names), f"only {sorted(worked)} of {names} processed jobs"
    table = e2e_cluster.kubectl("-n", NAMESPACE, "get", "thumbnailservices").splitlines()
    (row,) = [line.split() for line in table[1:] if line.split()[0] == service.name]
    assert row[1] == "True" and row[3] == "3/3", table
