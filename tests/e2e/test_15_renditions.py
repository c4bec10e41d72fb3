"""Signed renditions on real pods: two API server replicas behind the NodePort, a stampede
of one URL rendered once (the Redis lock across replicas), AVIF for a browser's Accept, then
served from MinIO; a tampered URL refused."""

from __future__ import annotations

import concurrent.futures
import json
from collections import Counter

import httpx
import pytest
import pyvips

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
BROWSER_ACCEPT = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8"


def _server_replicas(cluster: E2ECluster, service: Service, replicas: int) -> None:
    cluster.kubectl("-n", NAMESPACE, "patch", "thumbnailservice", service.name, "--type=merge",
                    "-p", json.dumps({"spec": {"server": {"replicas": replicas}}}))
    wait_for(lambda: len(ready_pods(cluster, service, "server")) == replicas
             and len(pods(cluster, selector(service, "server"))) == replicas,
             timeout=180, what=f"{replicas} ready server pods", interval=1)


def test_a_stampede_on_two_replicas_renders_once(
    e2e_cluster: E2ECluster, service: Service
) -> None:
    _server_replicas(e2e_cluster, service, 2)
    try:
        with httpx.Client(base_url=e2e_cluster.api_url, timeout=60,
                          headers={"X-API-Key": api_key(e2e_cluster, service)}) as http:
            accepted = http.post("/v1/jobs", files={"file": ("s.jpg", IMAGE.read_bytes())},
                                 data={"sizes": "small"})
            assert accepted.status_code == 202, accepted.text
            signed = http.get(f"/v1/jobs/{accepted.json()['id']}/rendition-url",
                              params={"options": "w:320,h:240,fit:smart"})
            assert signed.status_code == 200, signed.text
        path = signed.json()["path"]

        def fetch(_: int) -> httpx.Response:  # a fresh connection each: spread over both
            return httpx.get(e2e_cluster.api_url + path, timeout=120,
                             headers={"Accept": BROWSER_ACCEPT})

        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(fetch, range(20)))
        assert [a.status_code for a in answers] == [200] * 20, answers[0].text
        outcomes = Counter(a.headers["x-rendition"] for a in answers)
        print(f"\n[renditions] 20 concurrent requests over 2 replicas: {dict(outcomes)}")
        assert outcomes["rendered"] == 1, outcomes
        assert {a.content for a in answers} == {answers[0].content}
        first = answers[0]
        assert first.headers["content-type"] == "image/avif"
        assert first.headers["vary"] == "Accept"
        assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
        image = pyvips.Image.new_from_buffer(first.content, "")
        assert (image.width, image.height) == (320, 240)
        # Both replicas answered (so the second waited for the first one's render). The
        # access log quotes the path: look for its signature, which quoting leaves alone.
        signature = path.split("/")[2]
        served = {
            pod["metadata"]["name"]: e2e_cluster.kubectl(
                "-n", NAMESPACE, "logs", pod["metadata"]["name"], "-c", "server"
            ).count(f"GET /r/{signature}/")
            for pod in pods(e2e_cluster, selector(service, "server"))
        }
        assert len(served) == 2 and all(served.values()), served

        again = httpx.get(e2e_cluster.api_url + path, headers={"Accept": BROWSER_ACCEPT},
                          timeout=60)
        assert again.headers["x-rendition"] in ("cached", "stored"), again.headers
        assert again.content == first.content
        legacy = httpx.get(e2e_cluster.api_url + path, headers={"Accept": "*/*"}, timeout=60)
        assert legacy.headers["content-type"] == "image/jpeg"
        tampered = httpx.get(e2e_cluster.api_url + path.replace("w:320", "w:321"), timeout=60)
        assert tampered.status_code == 403, tampered.text
    finally:
        _server_replicas(e2e_cluster, service, 1)
