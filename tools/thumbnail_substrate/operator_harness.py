"""The operator in-process, for tests and benchmarks on a local control plane.

`InProcessOperator` runs the real operator (kopf, the controller and its conversion webhook)
in a background thread, restartable; `sample` gives the shipped v1alpha1 sample ready to
create under any name.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from thumbnail_operator.controller.controller import Controller
from thumbnail_operator.kube import KubeClient
from thumbnail_operator.run import run_operator
from thumbnail_substrate.binaries import REPO_ROOT
from thumbnail_substrate.deploy import OPERATOR_NAMESPACE
from thumbnail_substrate.local_webhook import local_settings
from thumbnail_substrate.testing import free_port, load_documents

# Written in the deprecated v1alpha1 on purpose: every create goes through the webhook.
SAMPLE_V1ALPHA1 = REPO_ROOT / "crds" / "samples" / "thumbnailservice-v1alpha1.yaml"
Obj = dict[str, Any]


def sample(name: str, **spec_overrides: Any) -> Obj:
    """The shipped sample, renamed, without node ports (they are unique cluster-wide)."""
    body = copy.deepcopy(load_documents(SAMPLE_V1ALPHA1)[0])
    body["metadata"]["name"] = name
    spec = body["spec"]
    spec["server"]["service"]["nodePort"]["enabled"] = False
    spec["minio"]["console"]["nodePort"]["enabled"] = False
    for key, value in spec_overrides.items():
        spec[key] = value
    return body


class InProcessOperator:
    """The real operator (kopf + reconciler) in a background thread, restartable."""

    def __init__(
        self, configuration: client.Configuration, resync_seconds: float = 30.0,
        peering: str | None = None, priority: int | None = None, **settings: Any,
    ):
        """`settings`: more OperatorSettings fields, e.g. `namespace=[...]` (watch only those)
        and `webhook_namespace` (where its certificate Secret lives)."""
        self.configuration = configuration
        self.resync_seconds = resync_seconds
        self.liveness_port = free_port()
        self.settings = local_settings(**{
            "resync_seconds": resync_seconds, "liveness_port": self.liveness_port,
            "peering": peering, "priority": priority,
            # Its own conversion webhook too (certificate Secret, caBundle, migration) under
            # the ServiceAccount's RBAC; the API server uses the session's shared one.
            "webhook_namespace": OPERATOR_NAMESPACE, "webhook_host": "127.0.0.1",
            "webhook_port": free_port(), "webhook_cert_check_seconds": 30,
            **settings,
        })
        self.controller: Controller | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.errors: list[BaseException] = []

    def start(self) -> None:
        self._stop = threading.Event()
        ready = threading.Event()
        self.controller = Controller(self.configuration, self.settings)
        controller = self.controller

        def main() -> None:
            try:
                asyncio.run(
                    run_operator(
                        self.configuration,
                        self.settings,
                        controller=controller,
                        stop_flag=self._stop,
                        ready_flag=ready,
                    )
                )
            except BaseException as err:  # surfaced by the fixture
                self.errors.append(err)
                ready.set()

        self._thread = threading.Thread(target=main, name="thumbnail-operator", daemon=True)
        self._thread.start()
        assert ready.wait(30), "operator did not become ready"
        assert not self.errors, self.errors

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            assert not self._thread.is_alive(), "operator did not stop"

    @contextmanager
    def stopped(self) -> Iterator[None]:
        self.stop()
        try:
            yield
        finally:
            self.start()


# -- the operator's own identity --------------------------------------------------------------

OPERATOR_ACCOUNT = "thumbnail-operator"


def operator_configuration(
    admin: KubeClient, hours: int = 6, namespace: str = OPERATOR_NAMESPACE,
    account: str = OPERATOR_ACCOUNT,
) -> client.Configuration:
    """Client credentials of the operator's ServiceAccount (a TokenRequest token), so every
    request is authorised by its RBAC alone (operator/rbac.yaml unless told), as in a
    cluster."""
    review = admin.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
              "spec": {"expirationSeconds": hours * 3600}},
    )
    configuration = client.Configuration()
    configuration.host = admin.configuration.host
    configuration.ssl_ca_cert = admin.configuration.ssl_ca_cert
    configuration.verify_ssl = True
    configuration.api_key = {"BearerToken": review["status"]["token"]}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    return configuration


def kubeconfig_for(configuration: client.Configuration, path: Path) -> Path:
    """A kubeconfig file holding `configuration`'s server, CA and bearer token (for processes
    such as `thumbnail-operator --kubeconfig`)."""
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "operator",
        "clusters": [{"name": "local", "cluster": {
            "server": configuration.host,
            "certificate-authority": configuration.ssl_ca_cert}}],
        "users": [{"name": "operator",
                   "user": {"token": configuration.api_key["BearerToken"]}}],
        "contexts": [{"name": "operator", "context": {"cluster": "local", "user": "operator"}}],
    }))
    path.chmod(0o600)
    return path
