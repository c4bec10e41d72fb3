"""The renderer the settings ask for."""

from __future__ import annotations

import os
from collections.abc import Callable

from ..settings import Settings
from .inline import InlineRenderer
from .pool import IsolatedRenderer
from .protocol import Renderer

# Not for the children either: the worker's metrics directory (they record nothing).
_WITHHELD = frozenset({"PROMETHEUS_MULTIPROC_DIR"})


def build_renderer(
    settings: Settings,
    on_replace: Callable[[str], None] | None = None,
    *,
    processes: int | None = None,
) -> Renderer:
    """THUMBNAIL_RENDER_ISOLATION: `processes` (default `render_concurrency`) child
    processes, or inline. `on_replace(reason)`: a child process was replaced
    (IsolatedRenderer)."""
    if settings.render_isolation == "inline":
        return InlineRenderer()
    return IsolatedRenderer(
        processes or settings.render_concurrency,
        kill_grace_seconds=settings.render_kill_grace_seconds,
        memory_limit_bytes=settings.render_memory_limit_bytes,
        # Children decode untrusted bytes: they get no THUMBNAIL_* variables (credentials).
        env={
            k: v for k, v in os.environ.items()
            if not k.startswith("THUMBNAIL_") and k not in _WITHHELD
        },
        on_replace=on_replace,
    )
