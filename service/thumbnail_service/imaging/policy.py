"""Process-wide libvips hardening: only trusted loaders of allowed formats may run.

libvips' block list is global state, so we only ever *unblock* more loaders (the union of
every allowed set used in this process, normally exactly the configured one). Narrower
per-call sets are still enforced per image by the sniffer and by checking which loader
libvips picked (see `formats_for_loader`), so concurrent callers cannot race each other.
"""

from __future__ import annotations

import threading
from typing import Any

import pyvips

from .models import ImageFormat

# libvips loader family (nickname of the abstract base class) for each input format.
LOADER_FAMILIES: dict[ImageFormat, str] = {
    ImageFormat.JPEG: "jpegload_base",
    ImageFormat.PNG: "pngload_base",
    ImageFormat.WEBP: "webpload_base",
    ImageFormat.GIF: "gifload_base",
    ImageFormat.TIFF: "tiffload_base",
    ImageFormat.AVIF: "heifload_base",
    ImageFormat.HEIF: "heifload_base",
}

_lock = threading.Lock()
_base_done = False
_unblocked: set[str] = set()


def loader_families() -> dict[str, str]:
    """Nickname -> GType name of each abstract loader family, e.g. 'jpegload_base'.

    Class names differ between builds (GIF is 'VipsForeignLoadNsgif'), nicknames do not;
    but the abstract bases are only reachable by walking the type tree.
    """
    found: dict[str, str] = {}

    def visit(gtype: int, _a: Any, _b: Any) -> Any:
        found[pyvips.nickname_find(gtype)] = pyvips.type_name(gtype)
        return pyvips.ffi.NULL

    pyvips.type_map(pyvips.type_from_name("VipsForeignLoad"), visit)
    return found


def operation_exists(nickname: str) -> bool:
    return nickname in loader_families() or bool(pyvips.type_find("VipsOperation", nickname))


def ensure_policy(allowed: frozenset[ImageFormat]) -> None:
    """Block every loader, then unblock the families of `allowed` (idempotent, cheap)."""
    global _base_done
    wanted = {LOADER_FAMILIES[f] for f in allowed} - _unblocked
    if _base_done and not wanted:
        return
    with _lock:
        if not _base_done:
            pyvips.block_untrusted_set(True)
            pyvips.operation_block_set("VipsForeignLoad", True)
            # The operation cache could hand back a pipeline we killed on timeout, and it
            # holds decoded pixels of past jobs: a job service gains nothing from it.
            pyvips.cache_set_max(0)
            _base_done = True
        classes = loader_families()
        for family in sorted(wanted - _unblocked):
            if family in classes:  # absent from this build: nothing to unblock
                pyvips.operation_block_set(classes[family], False)
            _unblocked.add(family)


def formats_for_loader(loader: str, heif_compression: str | None) -> frozenset[ImageFormat]:
    """Formats libvips' `vips-loader` (e.g. 'jpegload_buffer') can stand for."""
    family = loader.removesuffix("_buffer").removesuffix("_source") + "_base"
    found = frozenset(f for f, fam in LOADER_FAMILIES.items() if fam == family)
    if found == {ImageFormat.AVIF, ImageFormat.HEIF} and heif_compression in _HEIF_CODECS:
        return frozenset({_HEIF_CODECS[heif_compression]})
    return found


# heifload reports the codec; it tells AVIF (AV1) from HEIC (HEVC) better than brands do.
_HEIF_CODECS = {"av1": ImageFormat.AVIF, "hevc": ImageFormat.HEIF}
