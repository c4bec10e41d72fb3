"""The real MinIO server, built from its Go module, with generated root credentials."""

from __future__ import annotations

import secrets
import urllib.request
from pathlib import Path
from typing import Self

from thumbnail_substrate.binaries import go_tool
from thumbnail_substrate.component import Component
from thumbnail_substrate.process import ManagedProcess, ensure_port_free, free_port, wait_until


class MinioServer(Component):
    name = "minio"

    def __init__(self, workdir: Path | None = None, port: int | None = None) -> None:
        super().__init__(workdir)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.console_port = free_port()
        self.access_key = "substrate-" + secrets.token_hex(4)
        self.secret_key = secrets.token_urlsafe(24)
        self._binary = go_tool("minio")

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def _ready(self) -> bool:
        url = f"http://{self.endpoint}/minio/health/ready"
        with urllib.request.urlopen(url, timeout=1) as resp:
            return int(resp.status) == 200

    def start(self) -> Self:
        ensure_port_free(self.port, self.name)
        proc = ManagedProcess(
            self.name,
            [
                self._binary,
                "server",
                self.workdir / "data",
                "--quiet",
                "--address",
                self.endpoint,
                "--console-address",
                f"{self.host}:{self.console_port}",
            ],
            log=self.workdir / "minio.log",
            env={
                "MINIO_ROOT_USER": self.access_key,
                "MINIO_ROOT_PASSWORD": self.secret_key,
                "MINIO_BROWSER": "off",
                "MINIO_UPDATE": "off",
                "HOME": str(self.workdir),
            },
        )
        proc.start()
        self.processes = [proc]
        wait_until(
            lambda: proc.check_alive() and self._ready(), timeout=60, what="MinIO", log=proc.log
        )
        return self

    def env(self) -> dict[str, str]:
        return {
            "THUMBNAIL_S3_ENDPOINT": self.endpoint,
            "THUMBNAIL_S3_ACCESS_KEY": self.access_key,
            "THUMBNAIL_S3_SECRET_KEY": self.secret_key,
            "THUMBNAIL_S3_SECURE": "false",
        }
