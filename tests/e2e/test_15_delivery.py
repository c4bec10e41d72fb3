"""Delivery beyond jobs on real pods (#16).

Signed renditions: two API server replicas behind the NodePort, a stampede of one URL
rendered once (the Redis lock across replicas), AVIF for a browser's Accept, then served
again; a tampered URL refused.

Completion webhooks: a receiver pod in the cluster, allowed past the SSRF guard by its
Service's address alone; one delivery per job after two 500s, signed with the generated
secret; a callback to another in-cluster address (MinIO's Service) refused at delivery."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import pyvips
import yaml

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
from thumbnail_service.webhooks.signing import verify
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


# A receiver that logs every delivery as a JSON line and answers two 500s on /flaky first.
RECEIVER = """
import base64, json
from http.server import BaseHTTPRequestHandler, HTTPServer
answers = {"/flaky": [500, 500]}
class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        queued = answers.get(self.path, [])
        status = queued.pop(0) if queued else 200
        print(json.dumps({"path": self.path, "status": status,
                          "id": self.headers.get("Webhook-Id"),
                          "signature": self.headers.get("Webhook-Signature"),
                          "body": base64.b64encode(body).decode()}), flush=True)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
HTTPServer(("", 8080), Handler).serve_forever()
"""
RECEIVER_NAME = "webhook-receiver"


def _set_allowed_networks(cluster: E2ECluster, service: Service, networks: list[str]) -> None:
    """Patch the allowed networks and wait until the workers run with them (they roll)."""
    cluster.kubectl("-n", NAMESPACE, "patch", "thumbnailservice", service.name, "--type=merge",
                    "-p", json.dumps({"spec": {"thumbnails": {"webhooks": {
                        "allowedNetworks": networks}}}}))
    for component in ("worker", "server"):
        wait_for(lambda c=component: _configured(cluster, service, c, ",".join(networks)),
                 timeout=240, what=f"{component} pods with allowedNetworks {networks}",
                 interval=2)


def _configured(cluster: E2ECluster, service: Service, component: str, networks: str) -> bool:
    config = cluster.get("-n", NAMESPACE, "configmap", f"{service.name}-config")["data"]
    if config.get("THUMBNAIL_WEBHOOK_ALLOWED_NETWORKS", "") != networks:
        return False
    deployment = cluster.get("-n", NAMESPACE, "deployment", f"{service.name}-{component}")
    status, wanted = deployment["status"], deployment["spec"]["replicas"]
    return (status.get("observedGeneration") == deployment["metadata"]["generation"]
            and status.get("updatedReplicas", 0) == wanted
            and status.get("readyReplicas", 0) == wanted
            and status.get("replicas", 0) == wanted)


@pytest.fixture(scope="module")
def receiver(e2e_cluster: E2ECluster, service: Service) -> Iterator[str]:
    """The receiver pod and its Service; yields the receiver's base URL, with the service
    allowed to reach exactly its ClusterIP."""
    labels = {"app": RECEIVER_NAME}
    e2e_cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": RECEIVER_NAME, "namespace": NAMESPACE, "labels": labels},
         "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
             "name": "receiver", "image": e2e_cluster.images["server"],
             "imagePullPolicy": "IfNotPresent", "command": ["python3", "-c", RECEIVER],
             "ports": [{"containerPort": 8080}],
             "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                 "allowPrivilegeEscalation": False,
                                 "capabilities": {"drop": ["ALL"]}}}]}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": RECEIVER_NAME, "namespace": NAMESPACE},
         "spec": {"selector": labels, "ports": [{"port": 8080, "targetPort": 8080}]}},
    ]))
    try:
        e2e_cluster.kubectl("-n", NAMESPACE, "wait", "--for=condition=Ready",
                            f"pod/{RECEIVER_NAME}", "--timeout=120s", timeout=150)
        address = e2e_cluster.get("-n", NAMESPACE, "service", RECEIVER_NAME)["spec"]["clusterIP"]
        _set_allowed_networks(e2e_cluster, service, [f"{address}/32"])
        yield f"http://{RECEIVER_NAME}.{NAMESPACE}.svc.cluster.local:8080"
    finally:
        _set_allowed_networks(e2e_cluster, service, [])
        e2e_cluster.kubectl("-n", NAMESPACE, "delete", "pod,service", RECEIVER_NAME,
                            "--ignore-not-found", "--wait=false")


def _deliveries(cluster: E2ECluster) -> list[dict[str, object]]:
    lines = cluster.kubectl("-n", NAMESPACE, "logs", RECEIVER_NAME).splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_a_webhook_is_delivered_once_after_two_500s_and_refused_elsewhere(
    e2e_cluster: E2ECluster, service: Service, receiver: str
) -> None:
    secret = base64.b64decode(e2e_cluster.kubectl(
        "-n", NAMESPACE, "get", "secret", f"{service.name}-credentials",
        "-o", "jsonpath={.data.THUMBNAIL_WEBHOOK_SECRETS}")).decode().split(",")[0]
    with httpx.Client(base_url=e2e_cluster.api_url, timeout=60,
                      headers={"X-API-Key": api_key(e2e_cluster, service)}) as http:
        def submit(callback_url: str) -> str:
            answer = http.post("/v1/jobs", files={"file": ("s.jpg", IMAGE.read_bytes())},
                               data={"sizes": "small", "callback_url": callback_url})
            assert answer.status_code == 202, answer.text
            return str(answer.json()["id"])

        def settled(job_id: str) -> dict[str, object]:
            def done() -> dict[str, object] | None:
                job: dict[str, object] = http.get(f"/v1/jobs/{job_id}").json()
                state = job["callback"]["state"]  # type: ignore[index]
                return job if state in ("delivered", "failed") else None

            return wait_for(done, timeout=180, what=f"job {job_id}'s webhook", interval=1,
                            ignore=(httpx.HTTPError,))

        flaky = submit(f"{receiver}/flaky")
        # MinIO's Service is in the cluster too, but not in the allowed networks.
        elsewhere = submit(f"http://{service.name}-minio.{NAMESPACE}.svc.cluster.local:9000/")
        metadata = http.post("/v1/jobs", files={"file": ("s.jpg", IMAGE.read_bytes())},
                             data={"callback_url": "http://169.254.169.254/latest/"})
        assert metadata.status_code == 422, metadata.text
        delivered, refused = settled(flaky), settled(elsewhere)

    attempts = delivered["callback"]["attempts"]  # type: ignore[index]
    print(f"\n[webhooks] delivered after {[a['status_code'] for a in attempts]}; "
          f"elsewhere: {refused['callback']['attempts']}")  # type: ignore[index]
    assert [a["status_code"] for a in attempts] == [500, 500, 200]
    assert refused["callback"]["state"] == "failed"  # type: ignore[index]
    (attempt,) = refused["callback"]["attempts"]  # type: ignore[index]
    assert attempt["status_code"] is None and "non-public" in attempt["error"], attempt
    time.sleep(2)  # nothing more arrives
    posts = [d for d in _deliveries(e2e_cluster) if d["id"] == flaky]
    assert [p["status"] for p in posts] == [500, 500, 200]
    for post in posts:
        body = base64.b64decode(str(post["body"]))
        assert verify(str(post["signature"]), secret.encode(), body, now=int(time.time()))
    event = json.loads(base64.b64decode(str(posts[-1]["body"])))
    assert event["type"] == "job.succeeded" and event["job"]["id"] == flaky
    assert not [d for d in _deliveries(e2e_cluster) if d["id"] == elsewhere]


def test_tenants_made_with_thumbnail_admin_in_the_server_pod(
    e2e_cluster: E2ECluster, service: Service
) -> None:
    """The CLI ships in the server image and works with the pod's own settings; a key it
    makes is a tenant of its own, blind to the default tenant's jobs and they to its."""
    def admin(*args: str) -> str:
        return e2e_cluster.kubectl("-n", NAMESPACE, "exec", f"deploy/{service.name}-server",
                                   "-c", "server", "--", "thumbnail-admin", "keys", *args)

    key = json.loads(admin("create", "acme", "--name", "e2e"))
    with httpx.Client(base_url=e2e_cluster.api_url, timeout=60,
                      headers={"X-API-Key": key["key"]}) as acme, \
            httpx.Client(base_url=e2e_cluster.api_url, timeout=60,
                         headers={"X-API-Key": api_key(e2e_cluster, service)}) as default:
        mine = acme.post("/v1/jobs", files={"file": ("s.jpg", IMAGE.read_bytes())},
                         data={"sizes": "small"})
        theirs = default.post("/v1/jobs", files={"file": ("s.jpg", IMAGE.read_bytes())},
                              data={"sizes": "small"})
        assert mine.status_code == theirs.status_code == 202, (mine.text, theirs.text)
        assert default.get(f"/v1/jobs/{mine.json()['id']}").status_code == 404
        assert acme.get(f"/v1/jobs/{theirs.json()['id']}").status_code == 404
        assert [j["id"] for j in acme.get("/v1/jobs").json()["items"]] == [mine.json()["id"]]
        listed = admin("list", "acme")
        assert key["id"] in listed and key["key"] not in listed
        admin("revoke", key["id"])
        wait_for(lambda: acme.get("/v1/jobs").status_code == 401, timeout=30, interval=1,
                 what="the revoked key refused on the server replicas")
