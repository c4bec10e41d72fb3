"""The conversion side of the operator process: certificates, webhook server, migration.

Start order matters: the certificate Secret is settled and its CA published in the CRD
before the server starts, so the API server trusts the webhook from its first call; the
stored-version migration runs only once conversions are being served (it reads every object
through the conversion). A background task re-checks the certificate periodically, renews it
before it expires, re-publishes the CA and swaps the serving certificate without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from thumbnail_operator.controller.events import EventRecorder
from thumbnail_operator.kube import KubeClient
from thumbnail_operator.settings import OperatorSettings
from thumbnail_operator.webhook.certmanager import CertificateManager
from thumbnail_operator.webhook.migrate import MigrationReport, StorageVersionMigrator
from thumbnail_operator.webhook.server import WebhookServer

log = logging.getLogger(__name__)


@dataclass
class ConversionService:
    kube: KubeClient
    settings: OperatorSettings
    server: WebhookServer = field(init=False)
    certificates: CertificateManager = field(init=False)
    migration: MigrationReport | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.server = WebhookServer(self.settings.webhook_host, self.settings.webhook_port)
        self.certificates = CertificateManager(self.kube, self.settings.certificates())

    async def start(self) -> None:
        bundle = await asyncio.to_thread(self.certificates.reconcile)
        await self.server.start(bundle)
        self._tasks.append(asyncio.create_task(self._keep_certificates(), name="webhook-certs"))
        if self.settings.storage_migration:
            self._tasks.append(asyncio.create_task(self._migrate(), name="storage-migration"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.server.stop()

    async def check_certificates(self) -> None:
        bundle = await asyncio.to_thread(self.certificates.reconcile)
        self.server.load(bundle)

    async def _keep_certificates(self) -> None:
        while True:
            await asyncio.sleep(self.settings.webhook_cert_check_seconds)
            try:
                await self.check_certificates()
            except Exception:  # keep serving the current certificate; retry next round
                log.exception("webhook certificate check failed")

    async def _migrate(self) -> None:
        migrator = StorageVersionMigrator(self.kube, events=EventRecorder(self.kube),
                                          namespaces=self.settings.namespace)
        while True:
            try:
                self.migration = await asyncio.to_thread(migrator.run)
            except Exception:
                log.exception("storage version migration failed; retrying")
            else:
                if not self.migration.failed:
                    return
            await asyncio.sleep(self.settings.migration_retry_seconds)
