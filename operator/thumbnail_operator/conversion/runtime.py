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

from thumbnail_operator.conversion.certmanager import CertificateManager, CertificateSettings
from thumbnail_operator.conversion.migrate import MigrationReport, StorageVersionMigrator
from thumbnail_operator.conversion.webhook import WebhookServer
from thumbnail_operator.events import EventRecorder
from thumbnail_operator.kube import KubeClient

log = logging.getLogger(__name__)


@dataclass
class ConversionSettings:
    certificates: CertificateSettings
    host: str = "0.0.0.0"
    port: int = 9443
    check_seconds: float = 3600.0
    migrate: bool = True
    migration_retry_seconds: float = 60.0


@dataclass
class ConversionRuntime:
    kube: KubeClient
    settings: ConversionSettings
    server: WebhookServer = field(init=False)
    certificates: CertificateManager = field(init=False)
    migration: MigrationReport | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.server = WebhookServer(self.settings.host, self.settings.port)
        self.certificates = CertificateManager(self.kube, self.settings.certificates)

    async def start(self) -> None:
        bundle = await asyncio.to_thread(self.certificates.reconcile)
        await self.server.start(bundle)
        self._tasks.append(asyncio.create_task(self._keep_certificates(), name="webhook-certs"))
        if self.settings.migrate:
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
            await asyncio.sleep(self.settings.check_seconds)
            try:
                await self.check_certificates()
            except Exception:  # keep serving the current certificate; retry next round
                log.exception("webhook certificate check failed")

    async def _migrate(self) -> None:
        migrator = StorageVersionMigrator(self.kube, events=EventRecorder(self.kube))
        while True:
            try:
                self.migration = await asyncio.to_thread(migrator.run)
            except Exception:
                log.exception("storage version migration failed; retrying")
            else:
                if not self.migration.failed:
                    return
            await asyncio.sleep(self.settings.migration_retry_seconds)
