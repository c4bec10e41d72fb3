"""Where the substrate finds its executables, with one-line errors that say what to run."""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

from thumbnail_substrate.errors import SubstrateError

REPO_ROOT = Path(__file__).resolve().parents[2]


def tools_bindir() -> Path:
    """The cache directory written by ``tools/build-tools.sh`` (``make tools``)."""
    if explicit := os.environ.get("THUMBNAIL_TOOLS_BIN"):
        return Path(explicit)
    cache = os.environ.get("THUMBNAIL_TOOLS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
        "thumbnail-platform",
        "tools",
    )
    return Path(cache) / "bin"


def go_tool(name: str) -> Path:
    """A binary built from its pinned Go module (etcd, kube-*, kwok, minio, kubectl)."""
    path = tools_bindir() / name
    if not os.access(path, os.X_OK):
        raise SubstrateError(f"{name} not found in {tools_bindir()}: run `make tools`")
    return path


def postgres_bindir() -> Path:
    """The newest PostgreSQL server installed from Debian packages."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda p: int(Path(p).parts[-3]),
    )
    if not candidates:
        raise SubstrateError("PostgreSQL server not installed: run `make system-deps`")
    return Path(candidates[-1]).parent


def system_binary(name: str, package: str) -> Path:
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None
    )
    if not found:
        raise SubstrateError(
            f"{name} not installed (Debian package {package}): run `make system-deps`"
        )
    return Path(found)
