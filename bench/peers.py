"""The peers we compare against: where they are, how to run them, how to ask for a thumbnail.

Servers (used by the pipeline benchmark too): imgproxy (built by bench/setup-peers.sh from
bench/peers-go/imgproxy) and thumbor (PyPI, `.[bench]` extra), both bound to 127.0.0.1 and
stopped on exit. Every URL asks for the same thing: fit inside WxH (no upscaling), the given
quality, metadata stripped. In-process engine adapters live in `bench.engine_peers`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from thumbnail_substrate.process import ManagedProcess, free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
IMGPROXY_MODULE = ROOT / "bench" / "peers-go" / "imgproxy"
START_TIMEOUT = 30.0


class PeerUnavailable(RuntimeError):
    """A peer is not installed or could not be built here (one-line reason)."""


def tools_cache() -> Path:
    """Same cache as tools/build-tools.sh (THUMBNAIL_TOOLS_CACHE overrides it)."""
    if override := os.environ.get("THUMBNAIL_TOOLS_CACHE"):
        return Path(override)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "thumbnail-platform" / "tools"


def imgproxy_dir() -> Path:
    """Cache folder keyed like setup-peers.sh: sha256(go.mod + go.sum), 12 hex digits."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        path = IMGPROXY_MODULE / name
        digest.update(path.read_bytes() if path.is_file() else b"")
    return tools_cache() / f"imgproxy-{digest.hexdigest()[:12]}"


def imgproxy_binary() -> Path | None:
    binary = imgproxy_dir() / "imgproxy"
    return binary if os.access(binary, os.X_OK) else None


def imgproxy_unavailable_reason() -> str:
    """Why there is no binary: what setup-peers.sh recorded, else that it has not run."""
    note = imgproxy_dir() / "unavailable.txt"
    if note.is_file():
        return note.read_text().strip().splitlines()[0]
    return "not built: run `make bench-peers` (bench/setup-peers.sh)"


def vipsthumbnail_binary() -> Path | None:
    found = shutil.which("vipsthumbnail")
    return Path(found) if found else None


def one_core_env(workers: int) -> dict[str, str]:
    """Thread pools of every peer sized to `workers` (libvips, Go)."""
    return {"VIPS_CONCURRENCY": "1", "GOMAXPROCS": str(workers), "OMP_NUM_THREADS": "1"}


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:  # loopback only
        return bool(response.status == 200)


@contextmanager
def _server(name: str, argv: list[str], env: dict[str, str], health: str) -> Iterator[None]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        proc = ManagedProcess(name, argv, log=Path(tmp) / f"{name}.log", env=env)
        proc.start()
        try:
            wait_until(
                lambda: proc.check_alive() and _http_ok(health),
                timeout=START_TIMEOUT,
                what=name,
                log=proc.log,
            )
            yield
        finally:
            proc.stop()


@contextmanager
def run_imgproxy(local_root: Path, *, workers: int) -> Iterator[str]:
    """imgproxy serving files under `local_root` on a free loopback port (unsigned URLs)."""
    binary = imgproxy_binary()
    if binary is None:
        raise PeerUnavailable(f"imgproxy {imgproxy_unavailable_reason()}")
    port = free_port()
    env = {
        **one_core_env(workers),
        "IMGPROXY_BIND": f"127.0.0.1:{port}",
        "IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(local_root.resolve()),
        "IMGPROXY_WORKERS": str(workers),
        "IMGPROXY_CONCURRENCY": str(workers),  # name before v3.? (kept for older pins)
        "IMGPROXY_MAX_SRC_RESOLUTION": "100",  # megapixels; the default 16.8 is per-image
        "IMGPROXY_STRIP_METADATA": "true",
        "IMGPROXY_LOG_LEVEL": "warn",
    }
    base = f"http://127.0.0.1:{port}"
    with _server("imgproxy", [str(binary)], env, f"{base}/health"):
        yield base


def imgproxy_url(base: str, filename: str, width: int, height: int, fmt: str, quality: int) -> str:
    ext = "jpg" if fmt == "jpeg" else fmt
    return f"{base}/insecure/rs:fit:{width}:{height}:0/q:{quality}/plain/local:///{filename}@{ext}"


THUMBOR_CONF = """\
LOADER = 'thumbor.loaders.file_loader'
FILE_LOADER_ROOT_PATH = {root!r}
STORAGE = 'thumbor.storages.no_storage'
RESULT_STORAGE = None
SECURITY_KEY = 'loopback-benchmark'
ALLOW_UNSAFE_URL = True
ENGINE = 'thumbor.engines.pil'
PRESERVE_EXIF_INFO = False
AUTO_WEBP = False
MAX_WIDTH = 0
MAX_HEIGHT = 0
ENGINE_THREADPOOL_SIZE = 0
"""


def thumbor_version() -> str | None:
    try:
        import thumbor
    except ImportError:
        return None
    return str(getattr(thumbor, "__version__", "unknown"))


@contextmanager
def run_thumbor(local_root: Path, *, workers: int) -> Iterator[str]:
    """thumbor (file loader, PIL engine) with `workers` processes on a free loopback port."""
    script = Path(sys.executable).parent / "thumbor"
    if thumbor_version() is None or not script.is_file():
        raise PeerUnavailable("thumbor is not installed: run `make bench-peers`")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-thumbor-conf-") as tmp:
        conf = Path(tmp) / "thumbor.conf"
        conf.write_text(THUMBOR_CONF.format(root=str(local_root.resolve())))
        argv = [str(script), "-i", "127.0.0.1", "-p", str(port), "-c", str(conf), "-l", "warning"]
        if workers > 1:
            argv += ["--processes", str(workers)]
        base = f"http://127.0.0.1:{port}"
        with _server("thumbor", argv, one_core_env(1), f"{base}/healthcheck"):
            yield base


def thumbor_url(base: str, filename: str, width: int, height: int, fmt: str, quality: int) -> str:
    filters = f"filters:quality({quality}):format({fmt}):strip_icc():strip_exif()"
    return f"{base}/unsafe/fit-in/{width}x{height}/{filters}/{filename}"
