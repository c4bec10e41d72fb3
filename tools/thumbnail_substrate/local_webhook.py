"""The conversion webhook on a local control plane (tests, benchmarks), as the operator runs it.

The shipped CRD reaches the webhook through the Service `thumbnail-operator-webhook`, which
a local control plane (no kube-proxy, kwok pods) cannot route to a pod. The API server
resolves an ExternalName Service to its external name, though, so on a local control plane
that Service points at `localhost` and the webhook listens there: the shipped CRD works
unchanged (port 9443). One background webhook per test session (`shared_webhook`) serves it
with the operator's own classes (certificate Secret, caBundle sync, HTTPS server). When
9443 is taken (another session on the machine), it listens on a free port and `localize`
points the CRD's service port there.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import copy
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from thumbnail_operator.constants import WEBHOOK_NAMESPACE, WEBHOOK_PORT, WEBHOOK_SERVICE
from thumbnail_operator.kube import KubeClient, load_configuration
from thumbnail_operator.settings import OperatorSettings
from thumbnail_operator.webhook.certmanager import CertificateManager
from thumbnail_operator.webhook.server import WebhookServer
from thumbnail_substrate.testing import ensure_namespace, free_port

T = TypeVar("T")
SHIPPED_PORT = WEBHOOK_PORT
Obj = dict[str, Any]
# The API server of a local control plane dials localhost: the certificate names it too.
LOCAL_EXTRA_HOSTS = ["127.0.0.1", "localhost"]


def local_settings(**overrides: Any) -> OperatorSettings:
    """Operator settings for a webhook on this machine (certificate valid for localhost)."""
    return OperatorSettings(webhook_extra_host=LOCAL_EXTRA_HOSTS, **overrides)


class BackgroundWebhook:
    """The operator's conversion side (cert Secret, caBundle, HTTPS server) on its own loop."""

    def __init__(self, kube: KubeClient, port: int) -> None:
        self.kube = kube
        self.port = port
        self.certificates = CertificateManager(kube, local_settings().certificates())
        self.server = WebhookServer("127.0.0.1", port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="webhook",
                                        daemon=True)
        self._thread.start()

    def _run(self, factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
        return asyncio.run_coroutine_threadsafe(factory(), self._loop).result(30)

    def start(self) -> None:
        ensure_namespace(self.kube, WEBHOOK_NAMESPACE)
        bundle = self.certificates.reconcile()
        self._run(lambda: self.server.start(bundle))

    def stop(self) -> None:
        self._run(self.server.stop)

    def check_certificates(self) -> None:
        """One tick of the operator's certificate loop: renew if due, publish, swap."""
        bundle = self.certificates.reconcile()

        async def load() -> None:
            self.server.load(bundle)

        self._run(load)

    def close(self) -> None:
        self._run(self.server.stop)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self.server.close()


def external_name_service(port: int) -> Obj:
    """The webhook Service of a local control plane: the API server dials localhost:port."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": WEBHOOK_SERVICE, "namespace": WEBHOOK_NAMESPACE},
        "spec": {"type": "ExternalName", "externalName": "localhost",
                 # not "webhook": re-applying the shipped Service (port 9443, "webhook")
                 # merges its port into this list, and names must stay unique
                 "ports": [{"name": "local-webhook", "port": port, "targetPort": port}]},
    }


def localize(crd: Obj, webhook: BackgroundWebhook) -> Obj:
    """The CRD as shipped, its service port set to where `webhook` listens and its CA already
    in caBundle (no trust gap while the webhook's own check comes round)."""
    crd = copy.deepcopy(crd)
    conversion = crd.get("spec", {}).get("conversion") or {}
    if conversion.get("strategy") == "Webhook":
        bundle = webhook.server.serving
        assert bundle is not None, "start the webhook first"
        client_config = conversion["webhook"]["clientConfig"]
        client_config["service"]["port"] = webhook.port
        client_config["caBundle"] = base64.b64encode(bundle.ca_pem.encode()).decode()
    return crd


_shared: dict[str, BackgroundWebhook] = {}
_lock = threading.Lock()


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def shared_webhook(kubeconfig: str) -> BackgroundWebhook:
    """One running webhook per control plane for the whole test session, behind an
    ExternalName `thumbnail-operator-webhook` Service."""
    with _lock:
        if kubeconfig not in _shared:
            kube = KubeClient(load_configuration(kubeconfig))
            ensure_namespace(kube, WEBHOOK_NAMESPACE)
            port = SHIPPED_PORT if _port_free(SHIPPED_PORT) else free_port()
            service = external_name_service(port)
            kube.request(
                "PATCH", f"/api/v1/namespaces/{WEBHOOK_NAMESPACE}/services/{WEBHOOK_SERVICE}",
                body=service, query={"fieldManager": "local-webhook", "force": "true"},
                content_type="application/apply-patch+yaml",
            )
            webhook = BackgroundWebhook(kube, port)
            webhook.start()
            atexit.register(webhook.close)
            _shared[kubeconfig] = webhook
        return _shared[kubeconfig]
