"""Building blocks shared by every child: identity, names, labels, security, waiting."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from thumbnail_operator import constants as c
from thumbnail_operator.api.v1 import Image, ThumbnailServiceSpec

Obj = dict[str, Any]
ChildKey = tuple[str, str]  # (kind, name) of a child object

APP_UID = 10001


@dataclass(frozen=True)
class Owner:
    """The ThumbnailService a child belongs to."""

    name: str
    namespace: str
    uid: str
    api_version: str = c.API_VERSION

    def reference(self) -> Obj:
        return {
            "apiVersion": self.api_version,
            "kind": c.KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True)
class Names:
    """Child object names, derived from the ThumbnailService name (guide: `<release>-server`)."""

    instance: str

    def of(self, suffix: str) -> str:
        return f"{self.instance}-{suffix}"

    @property
    def server(self) -> str:
        return self.of("server")

    @property
    def server_node_port(self) -> str:
        return self.of("server-nodeport")

    @property
    def worker(self) -> str:
        return self.of("worker")

    @property
    def postgresql(self) -> str:
        return self.of("postgresql")

    @property
    def redis(self) -> str:
        return self.of("redis")

    @property
    def minio(self) -> str:
        return self.of("minio")

    @property
    def minio_console(self) -> str:
        return self.of("minio-console")

    @property
    def config(self) -> str:
        return self.of("config")

    @property
    def credentials(self) -> str:
        return self.of("credentials")

    @property
    def credentials_copy(self) -> str:
        """The operator's own copy of the credentials (see builders/credentials.py)."""
        return self.of("credentials-copy")

    def bucket_init(self, digest: str) -> str:
        return self.of(f"bucket-init-{digest[:10]}")


@dataclass(frozen=True)
class Context:
    """Everything a builder needs: who owns the children and what they should look like."""

    owner: Owner
    spec: ThumbnailServiceSpec

    @property
    def names(self) -> Names:
        return Names(self.owner.name)

    def selector(self, component: str) -> dict[str, str]:
        """Immutable Deployment/StatefulSet selector: never add mutable labels here."""
        return {
            c.LABEL_NAME: c.APP_NAME,
            c.LABEL_INSTANCE: self.owner.name,
            c.LABEL_COMPONENT: component,
        }

    def labels(self, component: str) -> dict[str, str]:
        return {
            **self.selector(component),
            c.LABEL_PART_OF: c.PART_OF,
            c.LABEL_MANAGED_BY: c.FIELD_MANAGER,
        }

    def metadata(self, name: str, component: str, **extra: Any) -> Obj:
        return {
            "name": name,
            "namespace": self.owner.namespace,
            "labels": self.labels(component),
            "ownerReferences": [self.owner.reference()],
            **extra,
        }


def pod_security(uid: int = APP_UID) -> Obj:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> Obj:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def container(
    name: str, image: Image, resources: Obj | None = None, **fields: Any
) -> Obj:
    """A container with the hardened defaults every child container shares."""
    body: Obj = {
        "name": name,
        "image": image.reference,
        "imagePullPolicy": image.pull_policy.value,
        "securityContext": container_security(),
        # A container that fails leaves its last log lines as its termination message, so
        # the status can say why it crashed (controller/diagnosis.py) without reading logs.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if resources:
        body["resources"] = copy.deepcopy(resources)  # children never share mutable parts
    body.update(fields)
    return body


SMALL_RESOURCES: Obj = {
    "requests": {"cpu": "10m", "memory": "16Mi"},
    "limits": {"cpu": "100m", "memory": "64Mi"},
}


def wait_for(target: str, host: str, port: int, image: Image) -> Obj:
    """Init container that blocks until a TCP endpoint accepts connections."""
    script = f"until nc -z -w 2 {host} {port}; do echo waiting for {target}; sleep 2; done"
    return container(
        f"wait-for-{target}", image, SMALL_RESOURCES, command=["sh", "-c", script]
    )


def tmp_volume(name: str = "tmp") -> Obj:
    return {"name": name, "emptyDir": {}}


def pull_secrets(spec: ThumbnailServiceSpec) -> list[Obj]:
    return [{"name": ref.name} for ref in spec.image_pull_secrets]
