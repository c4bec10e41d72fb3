"""The interface the worker renders through, and the one error only a renderer adds."""

from __future__ import annotations

from typing import Protocol

from ..imaging import ImageFormat, ImagingError, RenderOptions, Thumbnail


class RendererCrashedError(ImagingError):
    """The isolated renderer process died mid-job (segfault, abort, OOM kill): permanent."""


class Renderer(Protocol):
    """`imaging.render`'s signature; implemented by `InlineRenderer` and `IsolatedRenderer`."""

    def render(
        self,
        data: bytes,
        options: RenderOptions,
        *,
        allowed: frozenset[ImageFormat],
        max_pixels: int,
        timeout_seconds: float,
    ) -> list[Thumbnail]: ...

    def close(self) -> None: ...
