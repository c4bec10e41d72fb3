"""Build facts for /debug/info."""

from __future__ import annotations

import functools

import pyvips

from .models import ImageFormat, OutputFormat
from .policy import LOADER_FAMILIES, operation_exists

_SAVERS: dict[OutputFormat, str] = {
    OutputFormat.JPEG: "jpegsave_buffer",
    OutputFormat.PNG: "pngsave_buffer",
    OutputFormat.WEBP: "webpsave_buffer",
    OutputFormat.AVIF: "heifsave_buffer",
}


def libvips_version() -> str:
    return ".".join(str(pyvips.version(i)) for i in range(3))


@functools.cache
def supported_formats() -> dict[str, list[str]]:
    """Formats this libvips build can load/save (before the configured allow-list)."""
    load = [f.value for f in ImageFormat if operation_exists(LOADER_FAMILIES[f])]
    save = [f.value for f, op in _SAVERS.items() if operation_exists(op)]
    return {"load": load, "save": save}
