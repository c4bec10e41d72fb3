"""Redis from the Debian package, without persistence (as in the cluster)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Self

from thumbnail_substrate.binaries import system_binary
from thumbnail_substrate.component import Component
from thumbnail_substrate.process import ManagedProcess, ensure_port_free, free_port, wait_until


def _ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")


class RedisServer(Component):
    name = "redis"

    def __init__(self, workdir: Path | None = None, port: int | None = None) -> None:
        super().__init__(workdir)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._binary = system_binary("redis-server", "redis-server")

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> Self:
        ensure_port_free(self.port, self.name)
        proc = ManagedProcess(
            self.name,
            [
                self._binary,
                "--port",
                str(self.port),
                "--bind",
                self.host,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.workdir,
                "--daemonize",
                "no",
            ],
            log=self.workdir / "redis.log",
        )
        proc.start()
        self.processes = [proc]
        wait_until(
            lambda: proc.check_alive() and _ping(self.port), timeout=15, what="Redis", log=proc.log
        )
        return self

    def env(self) -> dict[str, str]:
        return {"THUMBNAIL_REDIS_HOST": self.host, "THUMBNAIL_REDIS_PORT": str(self.port)}
