"""Objects the local cluster needs before workloads run: kwok nodes, storage and a PV pool,
and the optional audit policy (write requests only)."""

from __future__ import annotations

from typing import Any

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
STORAGE_CLASS = "standard"
NODE_PODS = 110  # the kubelet's default --max-pods
WRITE_VERBS = ["create", "update", "patch", "delete", "deletecollection"]


def kwok_node(name: str, pods: int = NODE_PODS) -> dict[str, Any]:
    """A Node that kwok manages (heartbeats, Ready) because of its annotation."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
                "type": "kwok",
            },
        },
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": str(pods)},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": str(pods)},
        },
    }


def default_storage_class(binding: str = "Immediate") -> dict[str, Any]:
    """Static provisioning: the PV controller binds claims to the pre-created pool (on a
    real node `WaitForFirstConsumer`, so `local` volumes bind where the pod runs)."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": binding,
        "reclaimPolicy": "Retain",
    }


def pool_volume(
    index: int, size: str = "100Gi", *, name: str = "pool-pv", **source: Any
) -> dict[str, Any]:
    """One pre-created volume of the pool; `source` is its volume source and placement
    (default: a hostPath under /tmp, which kwok never touches)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"{name}-{index:03d}", "labels": {"substrate/pool": "true"}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": STORAGE_CLASS,
            **(source or {"hostPath": {"path": f"/tmp/substrate-pv/{index:03d}"}}),
        },
    }


def audit_policy() -> dict[str, Any]:
    """Audit every write (who, verb, resource, response code) once, when it completes.

    Reads are not logged: watches and lists of a busy cluster would dwarf the writes, and
    the question the log answers is "who changes what, how often".
    """
    return {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived", "ResponseStarted"],
        "rules": [
            {"level": "Metadata", "verbs": WRITE_VERBS},
            {"level": "None"},
        ],
    }
