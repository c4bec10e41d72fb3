"""The documented sample on real pods: READY True with every probe and init container really
run, the API on NodePort 30000 turning a JPEG into thumbnails, the MinIO console on 30001,
the bucket-init Job's buckets, one migration, and the hardening the operator promises
(non-root UIDs, read-only root filesystems)."""

from __future__ import annotations

import re

import httpx
import pytest
import pyvips

from tests.e2e.conftest import (
    IMAGE,
    NAMESPACE,
    ROOT,
    E2ECluster,
    Service,
    api_key,
    pods,
    submit_and_wait,
)
from thumbnail_substrate.deploy import OPERATOR_NAMESPACE
from thumbnail_substrate.testing import KubectlError, wait_for

pytestmark = pytest.mark.e2e

MIGRATIONS = ROOT / "service" / "thumbnail_service" / "migrations"


def test_operator_runs_in_a_pod_under_its_service_account(
    e2e_cluster: E2ECluster, operator: str
) -> None:
    (pod,) = pods(e2e_cluster, "app.kubernetes.io/name=thumbnail-operator", OPERATOR_NAMESPACE)
    assert pod["spec"]["serviceAccountName"] == "thumbnail-operator"
    assert pod["spec"]["containers"][0]["image"] == operator
    status = pod["status"]["containerStatuses"][0]
    assert status["ready"] and status["restartCount"] == 0, status


def test_ready_with_every_probe_and_init_container_run(
    e2e_cluster: E2ECluster, service: Service
) -> None:
    print(f"sample READY True {service.ready_seconds:.1f}s after apply")
    cr = e2e_cluster.get("-n", NAMESPACE, "thumbnailservice", service.name)
    status = cr["status"]
    assert all(component["ready"] for component in status["components"].values()), status
    selector = f"app.kubernetes.io/instance={service.name}"
    running = [p for p in pods(e2e_cluster, selector) if p["status"]["phase"] == "Running"]
    components = {p["metadata"]["labels"]["app.kubernetes.io/component"] for p in running}
    assert {"server", "worker", "postgresql", "redis", "minio"} <= components, components
    for pod in running:
        name = pod["metadata"]["name"]
        probed = [c for c in pod["spec"]["containers"] if "readinessProbe" in c]
        assert probed, f"{name} has no readiness probe"
        # Ready is only ever set by a readiness probe that really passed in the pod.
        for state in pod["status"]["containerStatuses"]:
            assert state["ready"] and state["started"], (name, state)
        for init in pod["status"].get("initContainerStatuses", []):
            terminated = init["state"].get("terminated")
            assert terminated and terminated["exitCode"] == 0, (name, init)


def test_api_health_and_thumbnails_through_node_port(
    e2e_cluster: E2ECluster, service: Service
) -> None:
    presets = {p["name"]: p for p in service.spec["thumbnails"]["presets"]}
    with httpx.Client(base_url=e2e_cluster.api_url, timeout=30) as http:
        # READY reflects the pods; kube-proxy may need a moment more for the NodePort.
        health = wait_for(lambda: http.get("/healthz"), timeout=30, what="/healthz",
                          ignore=(httpx.HTTPError,))
        assert health.status_code == 200
        detailed = wait_for(
            lambda: http.get("/healthz/detailed"), timeout=60, what="/healthz/detailed",
            ignore=(httpx.HTTPError,),
        )
        assert detailed.status_code == 200, detailed.text
        assert http.post("/v1/jobs").status_code == 401  # the API key is required
        http.headers["X-API-Key"] = api_key(e2e_cluster, service)
        source = pyvips.Image.new_from_file(str(IMAGE))
        job = submit_and_wait(http, IMAGE.read_bytes())
        assert job["status"] == "succeeded", job
        assert {t["name"] for t in job["thumbnails"]} == set(presets)
        for thumb in job["thumbnails"]:
            got = http.get(
                f"/v1/jobs/{job['id']}/thumbnails/{thumb['name']}", params={"redirect": "false"}
            )
            assert got.status_code == 200, got.text
            assert got.headers["content-type"].startswith("image/")
            assert len(got.content) == thumb["bytes"]
            image = pyvips.Image.new_from_buffer(got.content, "")
            box = presets[thumb["name"]]
            assert (image.width, image.height) == (thumb["width"], thumb["height"])
            assert image.width <= box["width"] and image.height <= box["height"]
            # The thumbnail shows the source: same aspect ratio, similar average colour.
            assert abs(image.width / image.height - source.width / source.height) < 0.05
            assert abs(image.avg() - source.avg()) < 12, (image.avg(), source.avg())


def test_minio_console_answers_on_its_node_port(e2e_cluster: E2ECluster, service: Service) -> None:
    with httpx.Client(base_url=e2e_cluster.console_url, timeout=10) as http:
        page = wait_for(lambda: http.get("/"), timeout=60, what="MinIO console",
                        ignore=(httpx.HTTPError,))
    assert page.status_code == 200, page.status_code
    assert "MinIO" in page.text


def _exec(cluster: E2ECluster, pod: str, *argv: str) -> str:
    return cluster.kubectl("-n", NAMESPACE, "exec", pod, "--", *argv)


def _psql(cluster: E2ECluster, service: Service, sql: str) -> str:
    """`sql` run by psql inside the PostgreSQL pod, with the password the pod was given."""
    pg = service.spec["postgresql"]
    script = (
        f'PGPASSWORD="$POSTGRES_PASSWORD" psql -h 127.0.0.1 -U {pg["user"]} '
        f'-d {pg["database"]} -At -c "{sql}"'
    )
    return _exec(cluster, f"{service.name}-postgresql-0", "sh", "-c", script).strip()


def test_bucket_init_job_created_both_buckets(e2e_cluster: E2ECluster, service: Service) -> None:
    jobs = e2e_cluster.get("-n", NAMESPACE, "jobs", "-l",
                           f"app.kubernetes.io/instance={service.name}")["items"]
    (job,) = [j for j in jobs if j["metadata"]["labels"]["app.kubernetes.io/component"]
              == "bucket-init"]
    assert job["status"].get("succeeded") == 1, job["status"]
    (pod,) = pods(e2e_cluster, f"job-name={job['metadata']['name']}")
    log = e2e_cluster.kubectl("-n", NAMESPACE, "logs", pod["metadata"]["name"])
    buckets = service.spec["objectStorage"]["buckets"]
    for bucket in (buckets["originals"], buckets["thumbnails"]):
        assert re.search(rf"Bucket created successfully .*{bucket}", log), log
    # And they exist: the MinIO data directory has one directory per bucket.
    listing = _exec(e2e_cluster, f"{service.name}-minio-0", "ls", "/data").split()
    assert {buckets["originals"], buckets["thumbnails"]} <= set(listing), listing


def test_migration_ran_once(e2e_cluster: E2ECluster, service: Service) -> None:
    rows = _psql(e2e_cluster, service, "SELECT version FROM schema_migrations ORDER BY 1")
    shipped = sorted(int(p.name[:4]) for p in MIGRATIONS.glob("*.sql"))
    assert [int(v) for v in rows.splitlines()] == shipped, rows
    (server,) = pods(e2e_cluster, f"app.kubernetes.io/instance={service.name},"
                                  "app.kubernetes.io/component=server")
    log = e2e_cluster.kubectl("-n", NAMESPACE, "logs", server["metadata"]["name"], "-c", "migrate")
    # The first server pod's init container applied them, each once.
    for version in shipped:
        assert len(re.findall(rf"applied migration {version:04d}_", log)) == 1, log


@pytest.mark.parametrize("component", ["server", "worker", "postgresql", "redis", "minio"])
def test_containers_run_non_root_with_read_only_root(
    e2e_cluster: E2ECluster, service: Service, component: str
) -> None:
    (pod, *_) = pods(e2e_cluster, f"app.kubernetes.io/instance={service.name},"
                                  f"app.kubernetes.io/component={component}")
    name = pod["metadata"]["name"]
    uid = _exec(e2e_cluster, name, "id", "-u").strip()
    assert uid != "0" and uid == str(pod["spec"]["securityContext"]["runAsUser"]), uid
    with pytest.raises(KubectlError, match="Read-only file system"):
        _exec(e2e_cluster, name, "touch", "/probe-write")
