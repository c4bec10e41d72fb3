"""The conversion webhook for tests on the local control plane, as the operator runs it.

The shipped CRD reaches the webhook through a Service, which a local control plane (no
kube-proxy, kwok pods) cannot route to. Tests that install the shipped CRD `localize` it:
the same CRD, calling `https://127.0.0.1:<port>/convert` served by one background webhook
per test session (`shared_webhook`), with the operator's own classes: certificate Secret,
caBundle sync, HTTPS server.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import copy
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from tests.operator.support import free_port
from thumbnail_operator.conversion.certmanager import CertificateManager, CertificateSettings
from thumbnail_operator.conversion.webhook import WebhookServer
from thumbnail_operator.kube import ApiError, KubeClient, load_configuration
from thumbnail_operator.schema.v1 import WEBHOOK_NAMESPACE, WEBHOOK_SERVICE

T = TypeVar("T")
Obj = dict[str, Any]
LOCAL_HOSTS = [f"{WEBHOOK_SERVICE}.{WEBHOOK_NAMESPACE}.svc",
               f"{WEBHOOK_SERVICE}.{WEBHOOK_NAMESPACE}.svc.cluster.local",
               "127.0.0.1", "localhost"]


class BackgroundWebhook:
    """The operator's conversion side (cert Secret, caBundle, HTTPS server) on its own loop."""

    def __init__(self, kube: KubeClient, port: int) -> None:
        self.kube = kube
        self.port = port
        self.certificates = CertificateManager(
            kube, CertificateSettings(namespace=WEBHOOK_NAMESPACE, hosts=list(LOCAL_HOSTS)),
        )
        self.server = WebhookServer("127.0.0.1", port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="webhook",
                                        daemon=True)
        self._thread.start()

    def _run(self, factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
        return asyncio.run_coroutine_threadsafe(factory(), self._loop).result(30)

    def start(self) -> None:
        ensure_namespace(self.kube)
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


def ensure_namespace(kube: KubeClient, name: str = WEBHOOK_NAMESPACE) -> None:
    try:
        kube.request("POST", "/api/v1/namespaces", body={
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    except ApiError as err:
        if not err.conflict:
            raise


def localize(crd: Obj, webhook: BackgroundWebhook) -> Obj:
    """The CRD calling `webhook` by URL, with its CA already in caBundle (no trust gap)."""
    crd = copy.deepcopy(crd)
    conversion = crd.get("spec", {}).get("conversion") or {}
    if conversion.get("strategy") == "Webhook":
        bundle = webhook.server.serving
        assert bundle is not None, "start the webhook first"
        conversion["webhook"]["clientConfig"] = {
            "url": f"https://127.0.0.1:{webhook.port}/convert",
            "caBundle": base64.b64encode(bundle.ca_pem.encode()).decode(),
        }
    return crd


_shared: dict[str, BackgroundWebhook] = {}
_lock = threading.Lock()


def shared_webhook(kubeconfig: str) -> BackgroundWebhook:
    """One running webhook per control plane for the whole test session."""
    with _lock:
        if kubeconfig not in _shared:
            kube = KubeClient(load_configuration(kubeconfig))
            ensure_namespace(kube)
            webhook = BackgroundWebhook(kube, free_port())
            webhook.start()
            atexit.register(webhook.close)
            _shared[kubeconfig] = webhook
        return _shared[kubeconfig]
