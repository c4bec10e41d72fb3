"""Base class: a component owns a work directory and some ManagedProcesses."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

from thumbnail_substrate.process import ManagedProcess


class Component:
    name = "component"

    def __init__(self, workdir: Path | None = None) -> None:
        self._owns_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix=f"substrate-{self.name}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.processes: list[ManagedProcess] = []

    def start(self) -> Self:
        raise NotImplementedError

    def _spawn(self, name: str, argv: list[str | Path]) -> ManagedProcess:
        """Start `argv` as a managed process logging to <workdir>/<name>.log."""
        proc = ManagedProcess(name, argv, log=self.workdir / f"{name}.log", cwd=self.workdir)
        proc.start()
        self.processes.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()

    def pause(self) -> None:
        """Freeze every process (SIGSTOP): connections hang instead of failing."""
        for proc in self.processes:
            proc.pause()

    def resume(self) -> None:
        for proc in self.processes:
            proc.resume()

    def close(self) -> None:
        """Stop and delete the work directory (unless the caller gave it)."""
        self.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def env(self) -> dict[str, str]:
        """Connection settings as THUMBNAIL_* variables (see docs/configuration.md)."""
        return {}

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
