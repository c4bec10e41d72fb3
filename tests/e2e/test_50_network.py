"""NetworkPolicies enforced on real pods (issue 15): the data stores refuse everyone else.

The real node runs kube-router's firewall (Kind: kindnet), so the sample's policies are
enforced for the whole suite: every other module's jobs ran through them. Here a pod of
another app, and one that borrows the service's own component label under another instance
name, try PostgreSQL, Redis and MinIO: refused, while the API (open to anyone) answers them
and a job submitted meanwhile completes. With `networkPolicy.enabled: false` the same probes
connect: the policies, not the probe, refused them. The same other pod scrapes the workers'
`/metrics` as a Prometheus would (issue 15: metrics are scraped from a worker pod).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.conftest import (
    IMAGE,
    NAMESPACE,
    E2ECluster,
    Service,
    api_key,
    pods,
    selector,
    submit_and_wait,
)
from thumbnail_substrate.testing import KubectlError, wait_for

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
CONNECT_SECONDS = 3
INTRUDER, IMPOSTOR = "intruder", "impostor"


def _probe_pod(cluster: E2ECluster, name: str, labels: dict[str, str]) -> None:
    image = cluster.images.get("wait", "busybox:1.36")
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "containers": [{
                "name": "probe", "image": image, "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"],
                "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                    "allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
            "terminationGracePeriodSeconds": 0,
        },
    }))


def _connects(cluster: E2ECluster, pod: str, host: str, port: int) -> bool:
    """Whether a TCP connection from `pod` to host:port is accepted (bounded by -w)."""
    try:
        cluster.kubectl("-n", NAMESPACE, "exec", pod, "--", "nc", "-z", "-w",
                        str(CONNECT_SECONDS), host, str(port), timeout=30)
    except KubectlError:
        return False
    return True


def _targets(service: Service) -> dict[str, tuple[str, int]]:
    return {
        "postgresql": (f"{service.name}-postgresql", 5432),
        "redis": (f"{service.name}-redis", 6379),
        "minio": (f"{service.name}-minio", 9000),
    }


def _reachable(cluster: E2ECluster, service: Service, pod: str) -> dict[str, bool]:
    return {store: _connects(cluster, pod, host, port)
            for store, (host, port) in _targets(service).items()}


def _set_policies(cluster: E2ECluster, service: Service, enabled: bool) -> None:
    cluster.kubectl("-n", NAMESPACE, "patch", "thumbnailservice", service.name, "--type=merge",
                    "-p", json.dumps({"spec": {"networkPolicy": {"enabled": enabled}}}))

    def applied() -> bool:
        names = cluster.kubectl("-n", NAMESPACE, "get", "networkpolicy", "-l",
                                f"app.kubernetes.io/instance={service.name}",
                                "-o", "name").split()
        return (len(names) == 5) is enabled

    wait_for(applied, timeout=60, what=f"NetworkPolicies {'created' if enabled else 'pruned'}")


@pytest.fixture(scope="module")
def probes(e2e_cluster: E2ECluster, service: Service) -> Iterator[None]:
    """Two pods that are not the service's: another app's, and one that borrows the
    service's own labels under another instance name (as a second ThumbnailService's has)."""
    _probe_pod(e2e_cluster, INTRUDER, {"app": "intruder"})
    _probe_pod(e2e_cluster, IMPOSTOR, {"app.kubernetes.io/name": "thumbnail-service",
                                       "app.kubernetes.io/instance": "someone-else",
                                       "app.kubernetes.io/component": "server"})
    try:
        for pod in (INTRUDER, IMPOSTOR):
            e2e_cluster.kubectl("-n", NAMESPACE, "wait", "--for=condition=Ready",
                                f"pod/{pod}", "--timeout=120s", timeout=150)
        yield
    finally:
        e2e_cluster.kubectl("-n", NAMESPACE, "delete", "pod", INTRUDER, IMPOSTOR,
                            "--ignore-not-found", "--wait=false")


@pytest.mark.timeout(600)
def test_data_stores_refuse_other_pods_while_the_service_works(
    e2e_cluster: E2ECluster, service: Service, probes: None
) -> None:
    cluster = e2e_cluster
    policies = cluster.kubectl("-n", NAMESPACE, "get", "networkpolicy", "-l",
                               f"app.kubernetes.io/instance={service.name}", "-o", "name")
    assert len(policies.split()) == 5, policies
    try:
        server = (f"{service.name}-server", 8000)
        started = time.monotonic()
        for pod in (INTRUDER, IMPOSTOR):
            # The probe works: the API is open to anyone.
            assert _connects(cluster, pod, *server), f"{pod} cannot reach the API"
            refused = _reachable(cluster, service, pod)
            print(f"{pod}: {refused}")
            assert refused == {"postgresql": False, "redis": False, "minio": False}, refused
        print(f"probes under enforcement: {time.monotonic() - started:.1f}s")

        # The service works meanwhile, through the same policies.
        with httpx.Client(base_url=cluster.api_url, timeout=30,
                          headers={"X-API-Key": api_key(cluster, service)}) as http:
            job = submit_and_wait(http, IMAGE.read_bytes())
        assert job["status"] == "succeeded", job

        # Without the policies the same probe connects: they were what refused it.
        _set_policies(cluster, service, enabled=False)
        def all_open() -> dict[str, bool] | None:
            found = _reachable(cluster, service, INTRUDER)
            return found if all(found.values()) else None

        print(f"without policies: {wait_for(all_open, timeout=60, what='open data stores')}")
        _set_policies(cluster, service, enabled=True)
        wait_for(lambda: not any(_reachable(cluster, service, INTRUDER).values()) or None,
                 timeout=60, what="the data stores closed again")
    finally:
        _set_policies(cluster, service, enabled=True)


def test_a_scraper_reads_the_workers_metrics_from_their_pods(
    e2e_cluster: E2ECluster, service: Service, probes: None
) -> None:
    """What Prometheus does through the PodMonitor `NAME-worker`: GET /metrics on each worker
    pod's health port, from another pod, under the policies. The jobs of the earlier tests
    are counted, summed over each pod's worker processes."""
    succeeded = 0.0
    workers = pods(e2e_cluster, selector(service, "worker"))
    assert workers
    for pod in workers:
        request = "GET /metrics HTTP/1.0\\r\\nHost: scrape\\r\\n\\r\\n"
        text = e2e_cluster.kubectl(
            "-n", NAMESPACE, "exec", INTRUDER, "--", "sh", "-c",
            f"printf '{request}' | nc -w 5 {pod['status']['podIP']} 8081", timeout=30)
        assert text.startswith("HTTP/1.0 200"), text[:200]
        found = re.search(r'^thumbnail_worker_jobs_finished_total\{outcome="succeeded",'
                          r'reason="none"\} (\S+)$', text, re.M)
        assert found, text[:2000]
        assert re.search(r"^thumbnail_worker_process_ready\{", text, re.M), text[:2000]
        succeeded += float(found.group(1))
        print(f"{pod['metadata']['name']}: {found.group(0)}")
    assert succeeded >= 1, succeeded
