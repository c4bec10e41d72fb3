"""PostgreSQL from the Debian packages, with a password-protected application role."""

from __future__ import annotations

import os
import pwd
import secrets
import signal
import subprocess
from pathlib import Path
from typing import Self

from thumbnail_substrate.binaries import postgres_bindir
from thumbnail_substrate.component import Component
from thumbnail_substrate.errors import SubstrateError
from thumbnail_substrate.process import ManagedProcess, ensure_port_free, free_port, wait_until


class PostgresServer(Component):
    name = "postgresql"

    def __init__(self, workdir: Path | None = None, port: int | None = None) -> None:
        super().__init__(workdir)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.user = "thumbnails"
        self.database = "thumbnails"
        self.password = secrets.token_urlsafe(16)
        self.datadir = self.workdir / "data"
        self.sockdir = self.workdir / "sock"
        self._bindir = postgres_bindir()
        # initdb refuses to run as root: run the server as the postgres user then.
        self._uid: int | None = None
        self._gid: int | None = None
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                raise SubstrateError("user `postgres` missing: run `make system-deps`") from None
            self._uid, self._gid = entry.pw_uid, entry.pw_gid

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"

    def _as_owner(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if self._uid is not None else argv

    def _initdb(self) -> None:
        if self._uid is not None:
            os.chown(self.workdir, self._uid, self._gid or -1)
        self.sockdir.mkdir(exist_ok=True)
        if self._uid is not None:
            os.chown(self.sockdir, self._uid, self._gid or -1)
        subprocess.run(
            self._as_owner(
                [
                    str(self._bindir / "initdb"),
                    "-D",
                    str(self.datadir),
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def _psql(self, sql: str) -> None:
        subprocess.run(
            self._as_owner(
                [
                    str(self._bindir / "psql"),
                    "-h",
                    str(self.sockdir),
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-qc",
                    sql,
                ]
            ),
            check=True,
            capture_output=True,
        )

    def start(self) -> Self:
        ensure_port_free(self.port, self.name)
        fresh = not self.datadir.exists()
        if fresh:
            self._initdb()
        proc = ManagedProcess(
            self.name,
            [
                self._bindir / "postgres",
                "-D",
                self.datadir,
                "-p",
                str(self.port),
                "-k",
                self.sockdir,
                "-c",
                f"listen_addresses={self.host}",
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "max_connections=200",
            ],
            log=self.workdir / "postgres.log",
            uid=self._uid,
            gid=self._gid,
            stop_signal=signal.SIGINT,  # "fast" shutdown: do not wait for clients to leave
        )
        proc.start()
        self.processes = [proc]
        wait_until(
            lambda: (
                proc.check_alive()
                and subprocess.run(
                    [str(self._bindir / "pg_isready"), "-h", self.host, "-p", str(self.port)],
                    capture_output=True,
                ).returncode
                == 0
            ),
            timeout=30,
            what="PostgreSQL",
            log=proc.log,
        )
        if fresh:
            self._psql(f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}'")
            self._psql(f"CREATE DATABASE {self.database} OWNER {self.user}")
        return self

    def create_database(self, name: str) -> str:
        """A fresh database owned by the application role; returns its DSN."""
        self._psql(f"CREATE DATABASE {name} OWNER {self.user}")
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{name}"

    def env(self) -> dict[str, str]:
        return {
            "THUMBNAIL_DATABASE_HOST": self.host,
            "THUMBNAIL_DATABASE_PORT": str(self.port),
            "THUMBNAIL_DATABASE_NAME": self.database,
            "THUMBNAIL_DATABASE_USER": self.user,
            "THUMBNAIL_DATABASE_PASSWORD": self.password,
        }
