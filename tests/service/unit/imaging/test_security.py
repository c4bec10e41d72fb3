"""The libvips loader allow-list itself, not only our sniffer, must refuse other formats."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import pyvips

from thumbnail_service.imaging import (
    RenderOptions,
    SizeSpec,
    UnsupportedFormatError,
    probe,
    render,
)

from .. import samples

ALL = samples.ALL_FORMATS
OPTIONS = RenderOptions((SizeSpec("t", 32, 32),))
BLOCKED = r"blocked|not in a known format"


@pytest.fixture(autouse=True)
def _policy_installed() -> None:
    probe(samples.encode(samples.canvas(8, 8), ".png"), allowed=ALL, max_pixels=10**6)


def _source(data: bytes) -> pyvips.Source:
    return pyvips.Source.new_from_memory(data)


@pytest.mark.parametrize(
    "load",
    [
        lambda: pyvips.Image.new_from_buffer(samples.SVG, ""),
        lambda: pyvips.Image.svgload_buffer(samples.SVG),
        lambda: pyvips.Image.thumbnail_buffer(samples.SVG, 16),
        lambda: pyvips.Image.matrixload_source(_source(b"2 2\n1 2\n3 4\n")),
        lambda: pyvips.Image.csvload_source(_source(b"1,2,3\n4,5,6\n")),
        lambda: pyvips.Image.new_from_source(_source(b"1,2,3\n4,5,6\n"), ""),
    ],
    ids=["svg-sniffed", "svgload", "svg-thumbnail", "matrix", "csv", "csv-sniffed"],
)
def test_libvips_refuses_untrusted_loaders(load: Callable[[], pyvips.Image]) -> None:
    with pytest.raises(pyvips.Error, match=BLOCKED):
        load().copy_memory()


def test_vips_native_format_is_refused_by_engine_and_libvips(tmp_path: Path) -> None:
    data = samples.vips_native(tmp_path)
    with pytest.raises(UnsupportedFormatError):
        render(data, OPTIONS, allowed=ALL, max_pixels=10**6, timeout_seconds=5)
    with pytest.raises(pyvips.Error, match=BLOCKED):
        pyvips.Image.vipsload_source(_source(data)).copy_memory()
    with pytest.raises(pyvips.Error):
        pyvips.Image.new_from_file(str(tmp_path / "image.v")).copy_memory()


def test_only_configured_loaders_are_unblocked_in_a_fresh_process() -> None:
    """Process-wide state, so check it where nothing else has widened the allow-list."""
    script = textwrap.dedent(
        """
        import pyvips
        from thumbnail_service.imaging import ImageFormat, probe
        canvas = pyvips.Image.black(8, 8, bands=3).copy(interpretation="srgb")
        jpeg, gif = canvas.write_to_buffer(".jpg"), canvas.write_to_buffer(".gif")
        def try_gif():
            for load in (lambda: pyvips.Image.gifload_buffer(gif),
                         lambda: pyvips.Image.new_from_buffer(gif, "")):
                try:
                    load()
                    print("gif loaded")
                except pyvips.Error as exc:
                    print("refused:", str(exc).strip().splitlines()[-1].strip())
        try_gif()  # control: before the engine is used, libvips loads GIF
        print(probe(jpeg, allowed=frozenset({ImageFormat.JPEG}), max_pixels=100).width)
        try_gif()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    lines = result.stdout.splitlines()
    assert lines[:3] == ["gif loaded", "gif loaded", "8"]
    assert lines[3:] == [
        "refused: gifload_buffer: operation is blocked",
        "refused: VipsForeignLoad: buffer is not in a known format",
    ]
