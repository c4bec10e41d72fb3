"""One ThumbnailService with every field set, written by hand in both versions."""

from __future__ import annotations

import copy
from typing import Any

from thumbnail_operator.api.conversion import V1, V1ALPHA1

RESOURCES = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
META = {
    "name": "shop",
    "namespace": "prod",
    "uid": "0b6c1c9e-2f11-4c1b-9d35-7a0f4f4d2a10",
    "resourceVersion": "4242",
    "generation": 7,
    "creationTimestamp": "2026-11-26T10:00:00Z",
    "labels": {"team": "media"},
    "annotations": {"owner": "media-team"},
    "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": V1ALPHA1}],
}


# A component's `scheduling` with every field set (the same in both versions).
SCHEDULING = {
    "nodeSelector": {"disktype": "ssd", "example.com/pool": "media"},
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "media", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 30},
    ],
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}},
    "topologySpreadConstraints": [{
        "maxSkew": 2, "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule", "minDomains": 2,
        "labelSelector": {"matchExpressions": [{"key": "role", "operator": "Exists"}]},
        "matchLabelKeys": ["pod-template-hash"], "nodeAffinityPolicy": "Ignore",
        "nodeTaintsPolicy": "Honor",
    }],
    "priorityClassName": "media-high",
}


def image(repository: str, tag: str) -> dict[str, str]:
    return {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"}


def full_alpha() -> dict[str, Any]:
    """Every v1alpha1 field set (external PostgreSQL, managed Redis and MinIO)."""
    return {
        "apiVersion": V1ALPHA1,
        "kind": "ThumbnailService",
        "metadata": copy.deepcopy(META),
        "spec": {
            "images": {
                "server": image("reg/server", "1.2.0"),
                "worker": image("reg/worker", "1.2.0"),
                "postgresql": image("postgres", "16"),
                "redis": image("redis", "7-alpine"),
                "minio": image("minio/minio", "R1"),
                "minioClient": image("minio/mc", "R2"),
                "wait": image("busybox", "1.36"),
                "pullSecrets": ["regcred", "mirror"],
            },
            "server": {
                "replicas": 3,
                "resources": RESOURCES,
                "service": {"type": "ClusterIP", "port": 8000,
                            "nodePort": {"enabled": True, "port": 30080}},
                "scheduling": copy.deepcopy(SCHEDULING),
            },
            "worker": {"replicas": 5, "concurrency": {"processes": 2, "threads": 4},
                       "resources": RESOURCES, "scheduling": {"topologySpreadConstraints": []}},
            "postgresql": {
                "enabled": False,
                "database": "thumbs",
                "user": "app",
                "storage": {"size": "20Gi"},
                "resources": RESOURCES,
                "scheduling": {"nodeSelector": {"disktype": "ssd"}},
                "external": {"host": "db.example.com", "port": 5433,
                             "secretRef": {"name": "db", "key": "pw"}},
            },
            "redis": {"enabled": True, "database": 3, "resources": RESOURCES,
                      "scheduling": {"priorityClassName": "queue"}},
            "minio": {
                "enabled": True,
                "storage": {"size": "50Gi"},
                "resources": RESOURCES,
                "scheduling": copy.deepcopy(SCHEDULING),
                "console": {"nodePort": {"enabled": True, "port": 30081}},
                "buckets": {"originals": "in", "thumbnails": "out"},
            },
            "persistence": {"enabled": True, "storageClassName": "fast",
                            "retentionPolicy": "Delete"},
            "thumbnails": {
                "presets": {"thumb": {"width": 64, "height": 64},
                            "hero": {"width": 1600, "height": 900}},
                "limits": {"maxUploadBytes": 1000, "maxPixels": 2000, "jobTimeoutSeconds": 9},
                "allowedFormats": ["jpeg", "png"],
                "authEnabled": False,
                "logLevel": "DEBUG",
            },
        },
        "status": {
            "observedGeneration": 7,
            "conditions": [{"type": "Ready", "status": "True", "reason": "AllReady",
                            "message": "ok", "lastTransitionTime": "2026-11-26T10:01:00Z"}],
            "endpoint": "http://shop-server.prod.svc:8000",
            "nodePortEndpoint": "<node-ip>:30080",
            "configHash": "abc123",
            "serverReplicas": "3/3",
            "workerReplicas": "5/5",
            "components": {
                "server": {"ready": True, "replicas": 3, "readyReplicas": 3},
                "workers": {"ready": True, "replicas": 5, "readyReplicas": 5,
                            "selector": "app=worker"},
                "postgresql": {"ready": True, "message": "external"},
                "redis": {"ready": True, "replicas": 1, "readyReplicas": 1},
                "minio": {"ready": False, "replicas": 1, "readyReplicas": 0},
                "buckets": {"ready": True, "replicas": 1, "readyReplicas": 1},
            },
        },
    }


def full_v1() -> dict[str, Any]:
    """The same object, written by hand in v1."""
    return {
        "apiVersion": V1,
        "kind": "ThumbnailService",
        "metadata": copy.deepcopy(META),
        "spec": {
            "server": {
                "image": image("reg/server", "1.2.0"),
                "replicas": 3,
                "resources": RESOURCES,
                "service": {"type": "ClusterIP", "port": 8000,
                            "nodePort": {"enabled": True, "port": 30080}},
                "scheduling": copy.deepcopy(SCHEDULING),
            },
            "workers": {"image": image("reg/worker", "1.2.0"), "replicas": 5,
                        "concurrency": {"processes": 2, "threads": 4}, "resources": RESOURCES,
                        "scheduling": {"topologySpreadConstraints": []}},
            "postgresql": {
                "mode": "External",
                "database": "thumbs",
                "user": "app",
                "managed": {"image": image("postgres", "16"), "storage": {"size": "20Gi"},
                            "resources": RESOURCES,
                            "scheduling": {"nodeSelector": {"disktype": "ssd"}}},
                "external": {"host": "db.example.com", "port": 5433,
                             "secretRef": {"name": "db", "key": "pw"}},
            },
            "redis": {"mode": "Managed", "database": 3,
                      "managed": {"image": image("redis", "7-alpine"), "resources": RESOURCES,
                                  "scheduling": {"priorityClassName": "queue"}}},
            "objectStorage": {
                "mode": "Managed",
                "buckets": {"originals": "in", "thumbnails": "out"},
                "managed": {"image": image("minio/minio", "R1"), "storage": {"size": "50Gi"},
                            "resources": RESOURCES,
                            "console": {"nodePort": {"enabled": True, "port": 30081}},
                            "scheduling": copy.deepcopy(SCHEDULING)},
                "bucketInit": {"image": image("minio/mc", "R2")},
            },
            "persistence": {"enabled": True, "storageClassName": "fast",
                            "retentionPolicy": "Delete"},
            "thumbnails": {
                "presets": [{"name": "thumb", "width": 64, "height": 64},
                            {"name": "hero", "width": 1600, "height": 900}],
                "limits": {"maxUploadBytes": 1000, "maxPixels": 2000, "jobTimeoutSeconds": 9},
                "allowedFormats": ["jpeg", "png"],
                "authEnabled": False,
                "logLevel": "DEBUG",
            },
            "dependencyWait": {"image": image("busybox", "1.36")},
            "imagePullSecrets": [{"name": "regcred"}, {"name": "mirror"}],
        },
        "status": {
            "observedGeneration": 7,
            "conditions": [{"type": "Ready", "status": "True", "reason": "AllReady",
                            "message": "ok", "lastTransitionTime": "2026-11-26T10:01:00Z"}],
            "endpoints": {"cluster": "http://shop-server.prod.svc:8000",
                          "nodePort": "<node-ip>:30080"},
            "configHash": "abc123",
            "serverReplicas": "3/3",
            "workerReplicas": "5/5",
            "components": {
                "server": {"ready": True, "replicas": 3, "readyReplicas": 3},
                "workers": {"ready": True, "replicas": 5, "readyReplicas": 5,
                            "selector": "app=worker"},
                "postgresql": {"ready": True, "message": "external"},
                "redis": {"ready": True, "replicas": 1, "readyReplicas": 1},
                "objectStorage": {"ready": False, "replicas": 1, "readyReplicas": 0},
                "buckets": {"ready": True, "replicas": 1, "readyReplicas": 1},
            },
        },
    }


# -- the hand-written pair -------------------------------------------------------------------
