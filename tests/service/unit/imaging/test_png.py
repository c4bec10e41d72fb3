"""PNG text chunks never reach libvips: it inflates them, unbounded, while reading the header."""

from __future__ import annotations

import resource
import struct
import zlib

import pytest

from thumbnail_service.imaging import CorruptImageError, RenderOptions, SizeSpec, probe, render
from thumbnail_service.imaging.png import MAX_CHUNKS_BEFORE_IDAT, without_text_chunks

from .. import samples

ALL = samples.ALL_FORMATS


def chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def ztxt_bomb(inflated: int = 50_000_000) -> bytes:
    """A zTXt chunk of ~49 KB that inflates to `inflated` bytes."""
    return chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"A" * inflated, 9))


def with_chunks_after_ihdr(png: bytes, *chunks: bytes) -> bytes:
    return png[:33] + b"".join(chunks) + png[33:]  # signature (8) + IHDR (25)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


PNG = samples.encode(samples.canvas(64, 64), ".png")
TEXT = chunk(b"tEXt", b"Title\x00hello")
ITXT = chunk(b"iTXt", b"Comment\x00\x01\x00\x00\x00" + zlib.compress(b"B" * 1000))


def test_text_chunks_before_the_pixels_are_cut_out() -> None:
    data = with_chunks_after_ihdr(PNG, TEXT, ztxt_bomb(1000), ITXT)
    assert without_text_chunks(data) == PNG


def test_nothing_to_drop_is_no_copy() -> None:
    assert without_text_chunks(PNG) is PNG
    jpeg = samples.jpeg(16, 16)
    assert without_text_chunks(jpeg) is jpeg


def test_text_after_the_pixels_and_other_chunks_stay() -> None:
    phys = chunk(b"pHYs", struct.pack(">IIB", 2835, 2835, 1))
    iend = PNG.rindex(b"IEND") - 4
    data = with_chunks_after_ihdr(PNG, phys)
    data = data[: iend + len(phys)] + TEXT + data[iend + len(phys) :]
    assert without_text_chunks(data) == data


@pytest.mark.parametrize("cut", [9, 20, 40, 50])
def test_a_malformed_chunk_list_is_left_for_libvips(cut: int) -> None:
    data = with_chunks_after_ihdr(PNG, TEXT)[:cut]
    assert without_text_chunks(data) == data


def test_too_many_chunks_before_the_pixels_is_corrupt() -> None:
    room = MAX_CHUNKS_BEFORE_IDAT - 3  # PNG has IHDR, eXIf and pHYs before its IDAT
    many = with_chunks_after_ihdr(PNG, *[TEXT] * room)
    assert without_text_chunks(many) == PNG
    with pytest.raises(CorruptImageError):
        without_text_chunks(with_chunks_after_ihdr(PNG, *[TEXT] * (room + 1)))


def test_a_ztxt_bomb_costs_nothing_to_probe_and_render() -> None:
    # 3 x 49 KB of zTXt inflating to 3 x 50 MB: libvips spent ~0.2 s of CPU and 50 MB per
    # chunk per header read (a probe reads the header once, a render three times).
    data = with_chunks_after_ihdr(PNG, *[ztxt_bomb()] * 3)
    before = cpu_seconds()
    assert probe(data, allowed=ALL, max_pixels=10**6).width == 64
    [thumb] = render(data, RenderOptions((SizeSpec("t", 32, 32),)), allowed=ALL,
                     max_pixels=10**6, timeout_seconds=10)
    assert (thumb.width, thumb.height) == (32, 32)
    assert cpu_seconds() - before < 0.2
