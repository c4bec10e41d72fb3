"""Installing the product on a cluster as a user does, with the image references changed the
way a user of a private registry changes them: `kubectl apply -k` of an overlay over
manifests/ that only swaps the operator image, and the documented sample with its image
fields pointed at local images. Shared by the end-to-end tests and `make dev-node`."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from thumbnail_substrate.binaries import REPO_ROOT
from thumbnail_substrate.testing import kubectl, kubectl_get, load_documents, wait_for

Obj = dict[str, Any]
OPERATOR_NAMESPACE = "thumbnail-system"
SAMPLE = REPO_ROOT / "manifests" / "samples" / "thumbnailservice-full.yaml"

# Where each image field of the v1 spec lives, by the component name of the image index.
IMAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "server": ("server", "image"),
    "worker": ("workers", "image"),
    "postgresql": ("postgresql", "managed", "image"),
    "redis": ("redis", "managed", "image"),
    "minio": ("objectStorage", "managed", "image"),
    "mc": ("objectStorage", "bucketInit", "image"),
    "wait": ("dependencyWait", "image"),
}


def with_images(body: Obj, images: dict[str, str]) -> Obj:
    """The sample with its image fields pointed at `images` (repository:tag references)."""
    body = copy.deepcopy(body)
    for component, path in IMAGE_FIELDS.items():
        if component not in images:
            continue
        repository, _, tag = images[component].rpartition(":")
        node = body["spec"]
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"}
    return body


def operator_overlay(directory: Path, operator_image: str) -> Path:
    """A kustomization over manifests/ that only swaps the operator image, as
    `kustomize edit set image` does for a private registry."""
    repository, _, tag = operator_image.rpartition(":")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(REPO_ROOT / "manifests", directory)],
                "images": [{"name": "thumbnail-operator", "newName": repository, "newTag": tag}],
            }
        )
    )
    return directory


def deployment_available(kubeconfig: Path, namespace: str, name: str) -> bool:
    status = kubectl_get(kubeconfig, "-n", namespace, "deployment", name).get("status", {})
    return any(
        c["type"] == "Available" and c["status"] == "True" for c in status.get("conditions", [])
    ) and status.get("updatedReplicas") == status.get("replicas")


def install_operator(kubeconfig: Path, image: str, workdir: Path, *, timeout: float) -> None:
    """`kubectl apply -k` the overlay; wait until the operator Deployment is available."""
    overlay = operator_overlay(workdir, image)
    # --force-conflicts: an upgrade takes over fields other managers touched since.
    kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-k", str(overlay))
    wait_for(
        lambda: deployment_available(kubeconfig, OPERATOR_NAMESPACE, "thumbnail-operator"),
        timeout=timeout, what="the operator Deployment", interval=1, ignore=(AssertionError,),
    )


def ready_condition(kubeconfig: Path, namespace: str, name: str) -> Obj | None:
    """The ThumbnailService's Ready condition when it is True, else None."""
    cr = kubectl_get(kubeconfig, "-n", namespace, "thumbnailservice", name)
    for condition in cr.get("status", {}).get("conditions", []):
        if condition["type"] == "Ready":
            return condition if condition["status"] == "True" else None
    return None


# The data stores of the sample: their `managed` settings, where `scheduling` lives.
DATA_STORES = ("postgresql", "redis", "objectStorage")


def apply_sample(
    kubeconfig: Path, images: dict[str, str], *, namespace: str, timeout: float,
    data_store_nodes: dict[str, str] | None = None,
) -> Obj:
    """Apply the documented sample with local images; wait for READY True; return it.
    `data_store_nodes`: a nodeSelector for PostgreSQL, Redis and MinIO (their volumes are
    local to a node, so a test that drains nodes keeps them on one it does not drain)."""
    body = with_images(load_documents(SAMPLE)[0], images)
    if data_store_nodes:
        for store in DATA_STORES:
            managed = body["spec"].setdefault(store, {}).setdefault("managed", {})
            managed.setdefault("scheduling", {})["nodeSelector"] = dict(data_store_nodes)
    kubectl(kubeconfig, "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(body))
    name = body["metadata"]["name"]
    wait_for(
        lambda: ready_condition(kubeconfig, namespace, name), timeout=timeout,
        what=f"ThumbnailService {name} READY True", interval=2, ignore=(AssertionError,),
    )
    return body
