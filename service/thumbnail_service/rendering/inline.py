"""Render in the calling process."""

from __future__ import annotations

from ..imaging import ImageFormat, RenderOptions, Thumbnail, render


class InlineRenderer:
    """Render in the worker process: only libvips' cooperative kill enforces the limit."""

    def render(
        self,
        data: bytes,
        options: RenderOptions,
        *,
        allowed: frozenset[ImageFormat],
        max_pixels: int,
        timeout_seconds: float,
    ) -> list[Thumbnail]:
        return render(
            data, options, allowed=allowed, max_pixels=max_pixels, timeout_seconds=timeout_seconds
        )

    def close(self) -> None:
        pass
