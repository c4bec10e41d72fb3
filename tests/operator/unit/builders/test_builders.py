"""Pure builders: spec in, child objects out (no cluster)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.operator.unit.helpers import OWNER, by_name, containers, desired, pod_specs
from thumbnail_operator import constants as c
from thumbnail_operator.api.schema.v1 import DEFAULT_PRESETS
from thumbnail_operator.api.v1 import parse_spec
from thumbnail_operator.builders.credentials import ensure_credentials
from thumbnail_operator.controller.drift import drifted_paths

EXTERNAL = {
    "postgresql": {"mode": "External", "external": {
        "host": "db.example.com", "port": 6432, "secretRef": {"name": "db", "key": "pw"}}},
    "redis": {"mode": "External", "external": {
        "host": "cache.example.com", "secretRef": {"name": "cache", "key": "pw"}}},
    "objectStorage": {"mode": "External", "external": {
        "endpoint": "s3.example.com:9443", "region": "eu-west-1",
        "secretRef": {"name": "s3", "accessKeyKey": "id", "secretKeyKey": "key"}}},
}


def test_default_spec_builds_the_whole_stack() -> None:
    kinds = sorted(by_name(desired()))
    assert [k for k in kinds if k[0] != "Job"] == sorted([
        ("ConfigMap", "demo-config"), ("Secret", "demo-credentials"),
        ("Secret", "demo-credentials-copy"), ("Deployment", "demo-server"),
        ("Deployment", "demo-worker"),
        ("Deployment", "demo-redis"), ("StatefulSet", "demo-postgresql"),
        ("StatefulSet", "demo-minio"), ("Service", "demo-server"),
        ("Service", "demo-postgresql"), ("Service", "demo-redis"), ("Service", "demo-minio"),
        ("Service", "demo-minio-console"),
        ("PodDisruptionBudget", "demo-worker"),  # two workers by default, one server
        *(("NetworkPolicy", f"demo-{component}")
          for component in ("server", "worker", "postgresql", "redis", "minio")),
    ])
    jobs = [name for kind, name in kinds if kind == "Job"]
    assert len(jobs) == 1 and jobs[0].startswith("demo-bucket-init-")


def test_every_child_is_owned_labelled_and_namespaced() -> None:
    # With volumes deleted with the resource, the credentials copy goes with them too.
    for child in desired({"persistence": {"retentionPolicy": "Delete"}}).children:
        meta = child["metadata"]
        assert meta["namespace"] == "media"
        assert meta["ownerReferences"] == [OWNER.reference()]
        assert meta["ownerReferences"][0]["controller"] is True
        labels = meta["labels"]
        assert labels[c.LABEL_NAME] == "thumbnail-service"
        assert labels[c.LABEL_INSTANCE] == "demo"
        assert labels[c.LABEL_MANAGED_BY] == "thumbnail-operator"
        assert labels[c.LABEL_PART_OF] == "thumbnail-platform"
        assert labels[c.LABEL_COMPONENT] in {
            "server", "worker", "postgresql", "redis", "minio", "bucket-init", "credentials-copy",
        }


def test_every_container_is_hardened_and_bounded() -> None:
    for name, pod in pod_specs(desired()).items():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in containers(pod):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"] == {"drop": ["ALL"]}
            assert container["resources"]["requests"] and container["resources"]["limits"]


def test_server_waits_for_dependencies_then_migrates() -> None:
    state = desired()
    server = pod_specs(state)["demo-server"]
    init = server["initContainers"]
    assert [i["name"] for i in init] == [
        "wait-for-postgresql", "wait-for-redis", "wait-for-minio", "migrate",
    ]
    assert "nc -z -w 2 demo-postgresql 5432" in init[0]["command"][-1]
    assert "demo-minio 9000" in init[2]["command"][-1]
    assert init[-1]["command"] == ["thumbnail-migrate"]
    main = server["containers"][0]
    assert main["command"] == ["thumbnail-api"]
    assert main["readinessProbe"]["httpGet"] == {"path": "/healthz/detailed", "port": "http"}
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert {"name": "tmp", "mountPath": "/tmp"} in main["volumeMounts"]
    assert main["envFrom"] == [
        {"configMapRef": {"name": "demo-config"}}, {"secretRef": {"name": "demo-credentials"}},
    ]


def test_worker_runs_the_worker_with_its_replicas_and_concurrency() -> None:
    state = desired({"workers": {"replicas": 7, "concurrency": {"processes": 3, "threads": 5}}})
    objs = by_name(state)
    worker = objs[("Deployment", "demo-worker")]
    assert worker["spec"]["replicas"] == 7
    main = worker["spec"]["template"]["spec"]["containers"][0]
    assert main["command"] == ["thumbnail-worker"]
    assert [i["name"] for i in worker["spec"]["template"]["spec"]["initContainers"]] == [
        "wait-for-postgresql", "wait-for-redis", "wait-for-minio",
    ]
    config = objs[("ConfigMap", "demo-config")]["data"]
    assert (config["THUMBNAIL_WORKER_PROCESSES"], config["THUMBNAIL_WORKER_THREADS"]) == ("3", "5")


def test_workers_get_the_time_to_finish_their_jobs_when_stopped() -> None:
    """The supervisor drains for the job time limit + 35 s after SIGTERM: the pod's grace
    period outlasts it, so a scale-down or a drain does not cut jobs off."""
    worker = by_name(desired({"thumbnails": {"limits": {"jobTimeoutSeconds": 90}}}))[
        ("Deployment", "demo-worker")]
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 90 + 40


def test_config_map_renders_the_contract_variables() -> None:
    spec = {
        "thumbnails": {
            "presets": [{"name": "tiny", "width": 32, "height": 16}],
            "limits": {"maxUploadBytes": 1000, "maxPixels": 2000, "jobTimeoutSeconds": 9},
            "allowedFormats": ["png", "webp"], "authEnabled": False, "logLevel": "DEBUG",
        },
        "objectStorage": {"buckets": {"originals": "in", "thumbnails": "out"}},
        "server": {"console": {"enabled": True}},
    }
    data = by_name(desired(spec))[("ConfigMap", "demo-config")]["data"]
    assert data["THUMBNAIL_CONSOLE_ENABLED"] == "true"
    assert json.loads(data["THUMBNAIL_PRESETS"]) == {"tiny": {"width": 32, "height": 16}}
    assert data["THUMBNAIL_MAX_UPLOAD_BYTES"] == "1000"
    assert data["THUMBNAIL_MAX_PIXELS"] == "2000"
    assert data["THUMBNAIL_JOB_TIMEOUT_SECONDS"] == "9"
    assert data["THUMBNAIL_ALLOWED_FORMATS"] == "png,webp"
    assert data["THUMBNAIL_AUTH_ENABLED"] == "false"
    assert data["THUMBNAIL_LOG_LEVEL"] == "DEBUG"
    assert data["THUMBNAIL_BUCKET_ORIGINALS"] == "in"
    assert data["THUMBNAIL_BUCKET_THUMBNAILS"] == "out"
    assert data["THUMBNAIL_DATABASE_HOST"] == "demo-postgresql"
    assert data["THUMBNAIL_REDIS_HOST"] == "demo-redis"
    assert data["THUMBNAIL_S3_ENDPOINT"] == "demo-minio:9000"
    assert data["THUMBNAIL_HOST"] == "0.0.0.0" and data["THUMBNAIL_PORT"] == "8000"
    assert not any("PASSWORD" in key or "SECRET" in key for key in data)


def test_secret_holds_the_credentials_base64_encoded() -> None:
    spec = parse_spec({})
    credentials = ensure_credentials(spec, None)
    secret = by_name(desired(credentials=credentials))[("Secret", "demo-credentials")]
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == credentials


def test_external_dependencies_replace_managed_ones() -> None:
    state = desired(EXTERNAL, external={"db": {"pw": "x"}, "cache": {"pw": "y"},
                                        "s3": {"id": "a", "key": "b"}})
    kinds = {kind for kind, _ in by_name(state)}
    assert "StatefulSet" not in kinds
    names = {name for _, name in by_name(state)}
    assert not names & {"demo-redis", "demo-postgresql", "demo-minio", "demo-minio-console"}
    objs = by_name(state)
    data = objs[("ConfigMap", "demo-config")]["data"]
    assert (data["THUMBNAIL_DATABASE_HOST"], data["THUMBNAIL_DATABASE_PORT"]) == (
        "db.example.com", "6432")
    assert data["THUMBNAIL_S3_ENDPOINT"] == "s3.example.com:9443"
    assert data["THUMBNAIL_S3_SECURE"] == "true"
    assert data["THUMBNAIL_S3_REGION"] == "eu-west-1"
    server = pod_specs(state)["demo-server"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in server["containers"][0]["env"]}
    assert env == {
        "THUMBNAIL_DATABASE_PASSWORD": {"name": "db", "key": "pw"},
        "THUMBNAIL_REDIS_PASSWORD": {"name": "cache", "key": "pw"},
        "THUMBNAIL_S3_ACCESS_KEY": {"name": "s3", "key": "id"},
        "THUMBNAIL_S3_SECRET_KEY": {"name": "s3", "key": "key"},
    }
    assert "nc -z -w 2 s3.example.com 9443" in server["initContainers"][2]["command"][-1]
    secret = objs[("Secret", "demo-credentials")]["data"]
    assert set(secret) == {"THUMBNAIL_API_KEYS", "THUMBNAIL_RENDITION_KEYS",
                           "THUMBNAIL_RENDITION_SALTS", "THUMBNAIL_WEBHOOK_SECRETS"}
    job = next(o for o in state.children if o["kind"] == "Job")
    job_env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert job_env["S3_ENDPOINT_URL"]["value"] == "https://s3.example.com:9443"
    assert job_env["THUMBNAIL_S3_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "s3", "key": "key"}


def test_node_port_services_follow_their_switches() -> None:
    off = by_name(desired())
    assert ("Service", "demo-server-nodeport") not in off
    assert off[("Service", "demo-minio-console")]["spec"]["type"] == "ClusterIP"
    on = by_name(desired({
        "server": {"service": {"port": 8080, "nodePort": {"enabled": True, "port": 30080}}},
        "objectStorage": {"managed": {"console": {"nodePort": {"enabled": True, "port": 30081}}}},
    }))
    api = on[("Service", "demo-server-nodeport")]["spec"]
    assert api["type"] == "NodePort"
    assert api["ports"][0] | {} == {
        "name": "http", "port": 8080, "targetPort": "http", "nodePort": 30080, "protocol": "TCP",
    }
    console = on[("Service", "demo-minio-console")]["spec"]
    assert (console["type"], console["ports"][0]["nodePort"]) == ("NodePort", 30081)


@pytest.mark.parametrize("policy", ["Retain", "Delete"])
def test_persistent_claims_follow_the_retention_policy(policy: str) -> None:
    spec = {"persistence": {"retentionPolicy": policy, "storageClassName": "fast"},
            "postgresql": {"managed": {"storage": {"size": "3Gi"}}}}
    sts = by_name(desired(spec))[("StatefulSet", "demo-postgresql")]["spec"]
    assert sts["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": policy, "whenScaled": "Retain",
    }
    claim = sts["volumeClaimTemplates"][0]["spec"]
    assert claim["resources"]["requests"]["storage"] == "3Gi"
    assert claim["storageClassName"] == "fast"


def test_without_persistence_data_lives_in_empty_dirs() -> None:
    objs = by_name(desired({"persistence": {"enabled": False}}))
    for name in ("demo-postgresql", "demo-minio"):
        sts = objs[("StatefulSet", name)]["spec"]
        assert "volumeClaimTemplates" not in sts
        volumes = {v["name"]: v for v in sts["template"]["spec"]["volumes"]}
        assert volumes["data"] == {"name": "data", "emptyDir": {}}


def test_config_hash_covers_config_and_credentials_but_not_scale() -> None:
    base = desired()
    credentials = {k: base64.b64decode(v).decode() for k, v in by_name(base)[
        ("Secret", "demo-credentials")]["data"].items()}
    same = desired(credentials=credentials)
    scaled = desired({"workers": {"replicas": 9}, "server": {"replicas": 3}},
                     credentials=credentials)
    preset = desired({"thumbnails": {"presets": [{"name": "small", "width": 1, "height": 1}]}},
                     credentials=credentials)
    reordered = desired(
        {"thumbnails": {"presets": list(reversed(DEFAULT_PRESETS))}}, credentials=credentials)
    rotated = desired(credentials={**credentials, "THUMBNAIL_API_KEYS": "other"})
    # The preset order carries no meaning for the service: reordering rolls no pod.
    assert base.config_hash == same.config_hash == scaled.config_hash == reordered.config_hash
    assert len({base.config_hash, preset.config_hash, rotated.config_hash}) == 3
    server = by_name(preset)[("Deployment", "demo-server")]["spec"]["template"]["metadata"]
    assert server["annotations"][c.CONFIG_HASH_ANNOTATION] == preset.config_hash


def test_external_secret_content_is_part_of_the_hash() -> None:
    one = desired(EXTERNAL, external={"db": {"pw": "1"}}, credentials={"THUMBNAIL_API_KEYS": "k"})
    two = desired(EXTERNAL, external={"db": {"pw": "2"}}, credentials={"THUMBNAIL_API_KEYS": "k"})
    assert one.config_hash != two.config_hash


def test_bucket_init_job_is_idempotent_and_renamed_on_change() -> None:
    def job(spec: dict[str, Any] | None = None) -> dict[str, Any]:
        return next(o for o in desired(spec).children if o["kind"] == "Job")

    first, again = job(), job()
    other = job({"objectStorage": {"buckets": {"originals": "uploads"}}})
    assert first["metadata"]["name"] == again["metadata"]["name"]
    assert first["metadata"]["name"] != other["metadata"]["name"]
    script = first["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert "mc mb --ignore-existing target/raws" in script
    assert "mc mb --ignore-existing target/thumbnails" in script
    assert first["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"


def test_builders_are_deterministic() -> None:
    credentials = {"THUMBNAIL_API_KEYS": "k", "THUMBNAIL_DATABASE_PASSWORD": "p",
                   "THUMBNAIL_REDIS_PASSWORD": "r", "THUMBNAIL_S3_ACCESS_KEY": "a",
                   "THUMBNAIL_S3_SECRET_KEY": "s"}
    assert desired(credentials=credentials) == desired(credentials=credentials)


def test_images_and_pull_secrets_are_configurable() -> None:
    spec = {"server": {"image": {"repository": "reg/server", "tag": "1.2", "pullPolicy": "Always"}},
            "imagePullSecrets": [{"name": "regcred"}]}
    server = pod_specs(desired(spec))["demo-server"]
    assert server["containers"][0]["image"] == "reg/server:1.2"
    assert server["containers"][0]["imagePullPolicy"] == "Always"
    assert server["imagePullSecrets"] == [{"name": "regcred"}]


def test_every_child_carries_a_digest_of_itself() -> None:
    credentials = ensure_credentials(parse_spec({}), None)
    old = by_name(desired(credentials=credentials))
    new = by_name(desired({"server": {"replicas": 2}}, credentials=credentials))
    for key, child in old.items():
        assert child["metadata"]["annotations"][c.APPLIED_HASH_ANNOTATION]
        # the previous object (as the API would return it) never contains a changed one
        assert (drifted_paths(new[key], child) == []) == (new[key] == child), key
    assert drifted_paths(new[("Deployment", "demo-server")], old[("Deployment", "demo-server")])


def test_credentials_copy_outlives_the_resource_exactly_when_its_volumes_do() -> None:
    retained = by_name(desired({"persistence": {"retentionPolicy": "Retain"}}))
    deleted = by_name(desired({"persistence": {"retentionPolicy": "Delete"}}))
    copy_name = ("Secret", "demo-credentials-copy")
    assert "ownerReferences" not in retained[copy_name]["metadata"]
    assert deleted[copy_name]["metadata"]["ownerReferences"] == [OWNER.reference()]
    assert retained[copy_name]["data"] == retained[("Secret", "demo-credentials")]["data"]


def test_each_data_store_rolls_only_for_its_own_credentials() -> None:
    base = ensure_credentials(parse_spec({}), None)

    def template_hashes(credentials: dict[str, str]) -> dict[str, str]:
        objs = by_name(desired(credentials=credentials))
        return {
            name: objs[(kind, name)]["spec"]["template"]["metadata"]["annotations"][
                c.CREDENTIALS_HASH_ANNOTATION]
            for kind, name in (("StatefulSet", "demo-postgresql"), ("Deployment", "demo-redis"),
                               ("StatefulSet", "demo-minio"))
        }

    before = template_hashes(base)
    for key, store in (("THUMBNAIL_REDIS_PASSWORD", "demo-redis"),
                       ("THUMBNAIL_DATABASE_PASSWORD", "demo-postgresql"),
                       ("THUMBNAIL_S3_SECRET_KEY", "demo-minio")):
        after = template_hashes({**base, key: "rotated-value"})
        assert {name for name in before if before[name] != after[name]} == {store}, key


def test_every_container_leaves_its_log_tail_when_it_fails() -> None:
    for name, pod_spec in pod_specs(desired()).items():
        for item in containers(pod_spec):
            assert item["terminationMessagePolicy"] == "FallbackToLogsOnError", (name, item["name"])


def test_workers_are_probed_through_their_supervisor() -> None:
    (worker,) = pod_specs(desired())["demo-worker"]["containers"]
    assert {"name": "THUMBNAIL_WORKER_HEALTH_PORT", "value": str(c.WORKER_HEALTH_PORT)} in (
        worker["env"])
    assert worker["ports"] == [{"name": "health", "containerPort": c.WORKER_HEALTH_PORT,
                                "protocol": "TCP"}]
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
