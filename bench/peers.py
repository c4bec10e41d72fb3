"""The peers we compare against: where they are, how to run them, how to ask for a thumbnail.

Servers (used by the pipeline benchmark too): imgproxy (built by bench/setup-peers.sh from
bench/peers-go/imgproxy) and thumbor (PyPI, `.[bench]` extra), both bound to 127.0.0.1 and
stopped on exit. Every URL asks for the same thing: fit inside WxH (no upscaling), the given
quality, metadata stripped.

Engine adapters (bench/engine.py): `pillow_thumbnails`, `ThumborEngine` (thumbor's own PIL
engine and Transformer, in-process) and `vipsthumbnail_batch` (one process, many files).
Every one writes the same outputs as ours: fit-inside boxes, same quality, no metadata,
JPEG with optimised Huffman tables and 4:2:0, AVIF at the encoder speed libvips uses.
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


# Thumbor's result storage (what serves its repeated URLs), for the renditions benchmark.
THUMBOR_RESULT_STORAGE = """\
RESULT_STORAGE = 'thumbor.result_storages.file_storage'
RESULT_STORAGE_FILE_STORAGE_ROOT_PATH = {root!r}
RESULT_STORAGE_STORES_UNSAFE = True
RESULT_STORAGE_EXPIRATION_SECONDS = 0
"""


@contextmanager
def run_thumbor(
    local_root: Path, *, workers: int, result_storage: Path | None = None
) -> Iterator[str]:
    """thumbor (file loader, PIL engine) with `workers` processes on a free loopback port;
    with `result_storage`, results are stored there and repeated URLs served from it."""
    script = Path(sys.executable).parent / "thumbor"
    if thumbor_version() is None or not script.is_file():
        raise PeerUnavailable("thumbor is not installed: run `make bench-peers`")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-thumbor-conf-") as tmp:
        conf = Path(tmp) / "thumbor.conf"
        text = THUMBOR_CONF.format(root=str(local_root.resolve()))
        if result_storage is not None:
            text += THUMBOR_RESULT_STORAGE.format(root=str(result_storage.resolve()))
        conf.write_text(text)
        argv = [str(script), "-i", "127.0.0.1", "-p", str(port), "-c", str(conf), "-l", "warning"]
        if workers > 1:
            argv += ["--processes", str(workers)]
        base = f"http://127.0.0.1:{port}"
        with _server("thumbor", argv, one_core_env(1), f"{base}/healthcheck"):
            yield base


def thumbor_url(base: str, filename: str, width: int, height: int, fmt: str, quality: int) -> str:
    filters = f"filters:quality({quality}):format({fmt}):strip_icc():strip_exif()"
    return f"{base}/unsafe/fit-in/{width}x{height}/{filters}/{filename}"


# --- engine adapters -------------------------------------------------------------------------
AVIF_SPEED = 5  # libvips heifsave effort 4 (its default) is aom speed 9 - 4 = 5
PIL_FORMATS = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF", "png": "PNG"}


def fitted(width: int, height: int, box: int) -> tuple[int, int]:
    """Fit-inside size of a `box` x `box` square, never upscaled (what every peer computes)."""
    scale = min(box / width, box / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def pil_save_options(fmt: str, quality: int) -> dict[str, object]:
    if fmt == "jpeg":
        return {"quality": quality, "optimize": True, "subsampling": "4:2:0"}
    if fmt == "avif":
        return {"quality": quality, "speed": AVIF_SPEED}
    return {"quality": quality}


def pillow_thumbnails(data: bytes, boxes: tuple[int, ...], fmt: str, quality: int) -> list[bytes]:
    """Pillow as a per-request service uses it: one open + draft + thumbnail per output."""
    from io import BytesIO

    from PIL import Image, ImageOps

    out = []
    for box in boxes:
        with Image.open(BytesIO(data)) as image:
            width, height = image.size
            image.draft("RGB", fitted(width, height, box))  # JPEG DCT scaling: tightest that fits
            pixels = ImageOps.exif_transpose(image).convert("RGB")
        pixels.thumbnail((box, box), Image.Resampling.LANCZOS)  # reducing_gap=2 (default)
        buffer = BytesIO()
        pixels.save(buffer, PIL_FORMATS[fmt], **pil_save_options(fmt, quality))
        out.append(buffer.getvalue())
    return out


def pillow_once(data: bytes, boxes: tuple[int, ...], fmt: str, quality: int) -> list[bytes]:
    """Pillow written like ours: one decode for the largest output, every size from it."""
    from io import BytesIO

    from PIL import Image, ImageOps

    with Image.open(BytesIO(data)) as image:
        width, height = image.size
        image.draft("RGB", fitted(width, height, max(boxes)))
        base = ImageOps.exif_transpose(image).convert("RGB")
    out = []
    for box in boxes:
        pixels = base.copy()
        pixels.thumbnail((box, box), Image.Resampling.LANCZOS)
        buffer = BytesIO()
        pixels.save(buffer, PIL_FORMATS[fmt], **pil_save_options(fmt, quality))
        out.append(buffer.getvalue())
    return out


class ThumborEngine:
    """thumbor's request path minus HTTP: PIL engine load, Transformer (fit-in), engine.read."""

    def __init__(self) -> None:
        import asyncio

        from thumbor.config import Config
        from thumbor.importer import Importer

        self.config = Config()
        self.config.ENGINE = "thumbor.engines.pil"
        self.config.PRESERVE_EXIF_INFO = False
        self.config.AVIF_SPEED = AVIF_SPEED
        self.config.ENGINE_THREADPOOL_SIZE = 0  # run the transform on the calling thread
        self.importer = Importer(self.config)
        self.importer.import_modules()
        self.loop = asyncio.new_event_loop()

    def thumbnails(
        self, data: bytes, boxes: tuple[int, ...], fmt: str, quality: int
    ) -> list[bytes]:
        from thumbor.context import Context, RequestParameters
        from thumbor.transformer import Transformer

        out = []
        for box in boxes:  # thumbor serves one size per request
            context = Context(config=self.config, importer=self.importer)
            context.request = RequestParameters(fit_in=True, width=box, height=box, quality=quality)
            engine = context.modules.engine
            context.request.engine = engine
            engine.load(data, None)
            self.loop.run_until_complete(Transformer(context).transform())
            engine.strip_icc()
            engine.strip_exif()
            out.append(bytes(engine.read(f".{'jpg' if fmt == 'jpeg' else fmt}", quality)))
        return out


VIPS_SAVE_OPTIONS = {
    "jpeg": "jpg[Q={q},optimize_coding,strip]",
    "webp": "webp[Q={q},strip]",
    "avif": "avif[Q={q},strip]",
}


def vipsthumbnail_batch(
    files: list[Path], out_dir: Path, boxes: tuple[int, ...], fmt: str, quality: int
) -> tuple[float, float]:
    """Run vipsthumbnail once per size over all `files`: (wall, CPU) seconds in total.

    One process handles the whole list (no start-up per image); every size is its own run,
    as with any per-size tool: the input is decoded once per size.
    """
    import subprocess
    import time

    binary = vipsthumbnail_binary()
    if binary is None:
        raise PeerUnavailable("vipsthumbnail is not installed: run `make bench-peers`")
    save = VIPS_SAVE_OPTIONS[fmt].format(q=quality)
    env = {**os.environ, **one_core_env(1)}
    started, cpu = time.perf_counter(), 0.0
    for box in boxes:
        argv = [str(binary), "-s", f"{box}x{box}", "-o", f"{out_dir}/%s_{box}.{save}"]
        proc = subprocess.Popen([*argv, *map(str, files)], env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"vipsthumbnail failed with exit code {proc.returncode}")
        cpu += usage.ru_utime + usage.ru_stime
    return time.perf_counter() - started, cpu
