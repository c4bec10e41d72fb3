"""End to end on Kind: the README quick start (`make k8s-all`) reaches a Ready
ThumbnailService, the API answers on the node port, an image becomes thumbnails, and
deleting the resource removes what the operator created.

The tests run in file order and share one deployment (tests/e2e/conftest.py).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import pyvips

from tests.e2e.conftest import NAMESPACE, Deployment

pytestmark = pytest.mark.e2e

IMAGE = Path(__file__).resolve().parents[1] / "data" / "sample.jpg"
T = TypeVar("T")
CHILD_KINDS = "deployments,statefulsets,services,configmaps,secrets,jobs,pods"


def wait_for(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (httpx.HTTPError, OSError):
            last = None
        if last:
            return last
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def _cr(deployment: Deployment) -> dict[str, Any]:
    out = deployment.kubectl(
        "-n", NAMESPACE, "get", "thumbnailservice", deployment.name, "-o", "json"
    )
    cr: dict[str, Any] = json.loads(out)
    return cr


def _api_key(deployment: Deployment) -> str:
    encoded = deployment.kubectl(
        "-n", NAMESPACE, "get", "secret", f"{deployment.name}-credentials",
        "-o", "jsonpath={.data.THUMBNAIL_API_KEYS}",
    )
    return base64.b64decode(encoded).decode().split(",")[0].strip()


def test_thumbnailservice_is_ready(deployment: Deployment) -> None:
    status = _cr(deployment)["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", ready
    server, workers = deployment.spec["server"]["replicas"], deployment.spec["workers"]["replicas"]
    assert status["serverReplicas"] == f"{server}/{server}"
    assert status["workerReplicas"] == f"{workers}/{workers}"
    assert all(component["ready"] for component in status["components"].values()), status


def test_kubectl_get_thumbnailservices_shows_health(deployment: Deployment) -> None:
    table = deployment.kubectl("-n", NAMESPACE, "get", "thumbnailservices").splitlines()
    header, rows = table[0].split(), [line.split() for line in table[1:]]
    assert header[:5] == ["NAME", "READY", "SERVER", "WORKERS", "ENDPOINT"], header
    (row,) = [r for r in rows if r[0] == deployment.name]
    assert row[1] == "True", table
    assert row[4] == f"http://{deployment.name}-server.{NAMESPACE}.svc:8000", table


def test_api_health_on_the_node_port(deployment: Deployment) -> None:
    with httpx.Client(base_url=deployment.api_url, timeout=10) as http:
        assert http.get("/healthz").status_code == 200
        detailed = wait_for(
            lambda: http.get("/healthz/detailed").status_code == 200, 60, "/healthz/detailed"
        )
        assert detailed
        assert "thumbnail" in http.get("/metrics").text
        if deployment.spec["thumbnails"]["authEnabled"]:
            assert http.post("/v1/jobs").status_code == 401  # the API key is required


def test_submit_image_and_fetch_thumbnails(deployment: Deployment) -> None:
    # v1 lists presets as {name, width, height}; index them by name.
    presets: dict[str, dict[str, int]] = {
        p["name"]: p for p in deployment.spec["thumbnails"]["presets"]
    }
    headers = {"X-API-Key": _api_key(deployment)}
    with httpx.Client(base_url=deployment.api_url, timeout=30, headers=headers) as http:
        submitted = http.post(
            "/v1/jobs", files={"file": ("sample.jpg", IMAGE.read_bytes(), "image/jpeg")}
        )
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]

        def finished() -> dict[str, Any] | None:
            job: dict[str, Any] = http.get(f"/v1/jobs/{job_id}").json()
            return job if job["status"] in {"succeeded", "failed"} else None

        job = wait_for(finished, 180, f"job {job_id} to finish")
        assert job["status"] == "succeeded", job
        assert {t["name"] for t in job["thumbnails"]} == set(presets)
        for thumb in job["thumbnails"]:
            got = http.get(
                f"/v1/jobs/{job_id}/thumbnails/{thumb['name']}", params={"redirect": "false"}
            )
            assert got.status_code == 200, got.text
            assert got.headers["content-type"].startswith("image/")
            assert len(got.content) == thumb["bytes"]
            image = pyvips.Image.new_from_buffer(got.content, "")
            assert (image.width, image.height) == (thumb["width"], thumb["height"])
            box = presets[thumb["name"]]
            assert image.width <= box["width"] and image.height <= box["height"]


def test_delete_removes_what_the_operator_created(deployment: Deployment) -> None:
    selector = f"app.kubernetes.io/instance={deployment.name}"
    before = deployment.kubectl("-n", NAMESPACE, "get", CHILD_KINDS, "-l", selector, "-o", "name")
    assert before.strip(), "the operator created nothing?"
    claims_before = deployment.kubectl("-n", NAMESPACE, "get", "pvc", "-o", "name").split()
    deployment.kubectl("-n", NAMESPACE, "delete", "thumbnailservice", deployment.name,
                       "--wait=true", "--timeout=120s")

    def gone() -> bool:
        left = deployment.kubectl(
            "-n", NAMESPACE, "get", CHILD_KINDS, "-l", selector, "-o", "name"
        )
        return not left.strip()

    wait_for(gone, 300, "children to be garbage-collected")
    claims_after = deployment.kubectl("-n", NAMESPACE, "get", "pvc", "-o", "name").split()
    persistence = deployment.spec["persistence"]
    if persistence["enabled"] and persistence["retentionPolicy"] == "Retain":
        assert claims_before and set(claims_after) == set(claims_before)  # data kept
        deployment.kubectl("-n", NAMESPACE, "delete", "pvc", *claims_after, "--wait=false")
    else:
        wait_for(
            lambda: not deployment.kubectl("-n", NAMESPACE, "get", "pvc", "-o", "name").strip(),
            120, "claims to be deleted",
        )
    with httpx.Client(base_url=deployment.api_url, timeout=5) as http, pytest.raises(
        httpx.HTTPError
    ):
        http.get("/healthz")
