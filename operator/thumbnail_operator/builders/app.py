"""The thumbnail API server and worker Deployments and the API Services."""

from __future__ import annotations

from thumbnail_operator import constants as c
from thumbnail_operator.api.v1 import Image, Resources, Scheduling
from thumbnail_operator.builders.common import (
    APP_UID,
    Context,
    Obj,
    container,
    pod_security,
    pull_secrets,
    tmp_volume,
    wait_for,
)
from thumbnail_operator.builders.config import external_secret_env
from thumbnail_operator.builders.credentials import (
    RENDITION_KEYS,
    RENDITION_SALTS,
    WEBHOOK_SECRETS,
)
from thumbnail_operator.builders.endpoints import dependencies
from thumbnail_operator.builders.network import CLIENTS
from thumbnail_operator.builders.scheduling import placement


def dependency_waits(ctx: Context, component: str) -> list[Obj]:
    """Init containers that hold a `component` pod until the data stores it uses answer:
    those whose NetworkPolicy admits it (network.CLIENTS), so none waits for a store that
    would never let it in."""
    deps = dependencies(ctx)
    wait = ctx.spec.dependency_wait.image
    return [
        wait_for(target, endpoint.host, endpoint.port, wait)
        for target, endpoint in (
            ("postgresql", deps.postgresql), ("redis", deps.redis), ("minio", deps.s3),
        )
        if component in CLIENTS[target]
    ]


def app_env(ctx: Context) -> dict[str, object]:
    thumbnails = ctx.spec.thumbnails
    hidden = [*([RENDITION_KEYS, RENDITION_SALTS] if not thumbnails.renditions.enabled else []),
              *([WEBHOOK_SECRETS] if not thumbnails.webhooks.enabled else [])]
    # An explicit env entry wins over envFrom: a feature turned off keeps its secrets in the
    # Secret (URLs signed before work again when it is turned back on), unseen by the pods.
    env = [*external_secret_env(ctx), *({"name": key, "value": ""} for key in hidden)]
    return {
        "envFrom": [
            {"configMapRef": {"name": ctx.names.config}},
            {"secretRef": {"name": ctx.names.credentials}},
        ],
        "env": env,
    }


def _app_deployment(
    ctx: Context,
    *,
    component: str,
    name: str,
    replicas: int,
    image: Image,
    resources: Resources,
    scheduling: Scheduling,
    command: str,
    config_hash: str,
    extra_init: list[Obj],
    main_fields: Obj,
) -> Obj:
    main = container(
        component,
        image,
        resources.as_dict(),
        command=[command],
        volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}],
        **app_env(ctx),
        **main_fields,
    )
    pod_spec: Obj = {
        "securityContext": pod_security(APP_UID),
        "initContainers": [*dependency_waits(ctx, component), *extra_init],
        "containers": [main],
        "volumes": [tmp_volume()],
        "enableServiceLinks": False,
        **placement(ctx, component, scheduling),
    }
    if ctx.spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = pull_secrets(ctx.spec)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": ctx.metadata(name, component),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": ctx.selector(component)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": ctx.labels(component),
                    "annotations": {c.CONFIG_HASH_ANNOTATION: config_hash},
                },
                "spec": pod_spec,
            },
        },
    }


def server_deployment(ctx: Context, config_hash: str, restore: Obj | None = None) -> Obj:
    """`restore`: the init container that restores a backup (builders/backup.py), after the
    migrations."""
    server = ctx.spec.server
    image = server.image
    # Migrations run once per rollout, before any new server pod can take traffic.
    migrate = container(
        "migrate",
        image,
        server.resources.as_dict(),
        command=["thumbnail-migrate"],
        volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}],
        **app_env(ctx),
    )
    return _app_deployment(
        ctx,
        component="server",
        name=ctx.names.server,
        replicas=server.replicas,
        image=image,
        resources=server.resources,
        scheduling=server.scheduling,
        command="thumbnail-api",
        config_hash=config_hash,
        extra_init=[migrate, *([restore] if restore else [])],
        main_fields={
            "ports": [{"name": "http", "containerPort": c.API_PORT, "protocol": "TCP"}],
            "readinessProbe": {
                "httpGet": {"path": "/healthz/detailed", "port": "http"},
                "initialDelaySeconds": 5,
                "periodSeconds": 10,
                "timeoutSeconds": 5,
                "failureThreshold": 3,
            },
            "livenessProbe": {
                "httpGet": {"path": "/healthz", "port": "http"},
                "initialDelaySeconds": 15,
                "periodSeconds": 20,
                "timeoutSeconds": 5,
                "failureThreshold": 3,
            },
        },
    )


def worker_deployment(ctx: Context, config_hash: str, replicas: int | None = None) -> Obj:
    """`replicas`: the autoscaler's size (None: `workers.replicas`)."""
    workers = ctx.spec.workers
    # The supervisor (thumbnail-worker) replaces a dead or hung worker process itself; its
    # /healthz fails only when the supervisor's own loop is stuck, its /readyz until every
    # process beats (docs/configuration.md, "Worker supervision").
    deployment = _app_deployment(
        ctx,
        component="worker",
        name=ctx.names.worker,
        replicas=workers.replicas if replicas is None else replicas,
        image=workers.image,
        resources=workers.resources,
        scheduling=workers.scheduling,
        command="thumbnail-worker",
        config_hash=config_hash,
        extra_init=[],
        main_fields={
            "ports": [{"name": "health", "containerPort": c.WORKER_HEALTH_PORT,
                       "protocol": "TCP"}],
            "readinessProbe": {
                "httpGet": {"path": "/readyz", "port": "health"},
                "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 2,
            },
            "livenessProbe": {
                "httpGet": {"path": "/healthz", "port": "health"},
                "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3,
            },
        },
    )
    pod = deployment["spec"]["template"]["spec"]
    # On SIGTERM (a scale-down, a rollout, a drain) the supervisor lets its processes finish
    # the jobs in hand for up to the job time limit + 35 s (worker/supervisor.py): the pod
    # must not be killed before that, or the cut-off jobs wait for their lease to expire.
    pod["terminationGracePeriodSeconds"] = ctx.spec.thumbnails.limits.job_timeout_seconds + 40
    (worker,) = pod["containers"]
    worker["env"] = [
        *worker["env"],
        {"name": "THUMBNAIL_WORKER_HEALTH_PORT", "value": str(c.WORKER_HEALTH_PORT)},
    ]
    return deployment


def api_service(ctx: Context) -> Obj:
    service = ctx.spec.server.service
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": ctx.metadata(ctx.names.server, "server"),
        "spec": {
            "type": service.type.value,
            "selector": ctx.selector("server"),
            "ports": [
                {"name": "http", "port": service.port, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }


def api_node_port_service(ctx: Context) -> Obj | None:
    node_port = ctx.spec.server.service.node_port
    if not node_port.enabled:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": ctx.metadata(ctx.names.server_node_port, "server"),
        "spec": {
            "type": "NodePort",
            "selector": ctx.selector("server"),
            "ports": [
                {
                    "name": "http",
                    "port": ctx.spec.server.service.port,
                    "targetPort": "http",
                    "nodePort": node_port.port,
                    "protocol": "TCP",
                }
            ],
        },
    }


def api_endpoint(ctx: Context) -> str:
    """In-cluster URL of the API, as reported in status."""
    service = ctx.spec.server.service
    host = f"{ctx.names.server}.{ctx.owner.namespace}.svc"
    return f"http://{host}:{service.port}"

