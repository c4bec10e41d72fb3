"""The HTTPS endpoint the API server calls to convert ThumbnailServices (POST /convert).

Runs inside the operator's event loop (aiohttp). The TLS certificate can be swapped while
serving (`load`): new handshakes use the new certificate, open connections finish on the
old one, so rotation needs no restart.
"""

from __future__ import annotations

import json
import logging
import ssl
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import Counter, Histogram

from thumbnail_operator.webhook.certs import Bundle
from thumbnail_operator.webhook.review import review

log = logging.getLogger(__name__)

CONVERSIONS = Counter(
    "thumbnail_operator_conversion_reviews_total",
    "ConversionReview requests answered, by result.",
    ["result"],
)
CONVERTED_OBJECTS = Counter(
    "thumbnail_operator_converted_objects_total",
    "Objects converted by the webhook, by target apiVersion.",
    ["desired"],
)
REVIEW_SECONDS = Histogram(
    "thumbnail_operator_conversion_review_seconds", "Time to answer one ConversionReview."
)

MAX_REVIEW_BYTES = 64 * 1024 * 1024  # a list conversion carries every object of the list


async def _convert(request: web.Request) -> web.Response:
    started = time.monotonic()
    try:
        document: Any = json.loads(await request.read())
    except ValueError as err:
        CONVERSIONS.labels(result="bad_request").inc()
        return web.json_response({"error": f"request body is not JSON: {err}"}, status=400)
    answer = review(document)
    result = answer["response"]["result"]
    CONVERSIONS.labels(result=result["status"]).inc()
    if result["status"] == "Success":
        desired = str(document["request"]["desiredAPIVersion"])
        CONVERTED_OBJECTS.labels(desired=desired).inc(len(answer["response"]["convertedObjects"]))
    else:
        log.warning("conversion failed: %s", result.get("message"))
    REVIEW_SECONDS.observe(time.monotonic() - started)
    return web.json_response(answer)


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


def application() -> web.Application:
    app = web.Application(client_max_size=MAX_REVIEW_BYTES)
    app.router.add_post("/convert", _convert)
    app.router.add_get("/healthz", _healthz)
    return app


class WebhookServer:
    """HTTPS server for /convert; `port=0` picks a free port (see `port` after start)."""

    def __init__(self, host: str = "0.0.0.0", port: int = 9443) -> None:
        self.host = host
        self.port = port
        self._dir = tempfile.TemporaryDirectory(prefix="thumbnail-webhook-")
        self._ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ssl.minimum_version = ssl.TLSVersion.TLSv1_2
        self._runner: web.AppRunner | None = None
        self.serving: Bundle | None = None

    def load(self, bundle: Bundle) -> None:
        """Serve `bundle`'s certificate from the next handshake on."""
        if bundle == self.serving:
            return
        directory = Path(self._dir.name)
        cert, key = directory / "tls.crt", directory / "tls.key"
        cert.write_text(bundle.cert_pem)
        key.touch(mode=0o600)
        key.write_text(bundle.key_pem)
        self._ssl.load_cert_chain(cert, key)
        self.serving = bundle
        log.info("conversion webhook serves a new certificate")

    async def start(self, bundle: Bundle) -> None:
        self.load(bundle)
        # Short grace: the API server keeps connections alive; a stop must not wait a minute.
        self._runner = web.AppRunner(application(), access_log=None, shutdown_timeout=3.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self._ssl,
                           reuse_address=True)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("conversion webhook listening on https://%s:%d/convert", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            # Kept-alive connections (the API server pools them) would otherwise go on being
            # answered after the listener closed: a stopped webhook must answer nothing.
            # Close the listener, then drop pooled connections, then clean up: cleanup() alone
            # waits out a graceful shutdown while those connections keep being served.
            for site in list(self._runner.sites):
                await site.stop()
            server = self._runner.server
            for connection in list(server.connections) if server is not None else []:
                connection.force_close()
            await self._runner.cleanup()
            self._runner = None
            log.info("conversion webhook stopped")

    def close(self) -> None:
        self._dir.cleanup()
