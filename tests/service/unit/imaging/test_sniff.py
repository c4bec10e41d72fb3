from __future__ import annotations

from pathlib import Path

import pytest

from thumbnail_service.imaging import ImageFormat, sniff_format

from .. import samples


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\0\0\0\0" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\0\0\0\x08mdat"


@pytest.mark.parametrize(
    ("suffix", "expected"),
    [
        (".jpg", ImageFormat.JPEG),
        (".png", ImageFormat.PNG),
        (".webp", ImageFormat.WEBP),
        (".gif", ImageFormat.GIF),
        (".tif", ImageFormat.TIFF),
        (".avif", ImageFormat.AVIF),
    ],
)
def test_sniffs_real_encodings_from_first_64_bytes(suffix: str, expected: ImageFormat) -> None:
    data = samples.encode(samples.canvas(32, 24), suffix)
    assert sniff_format(data[:64]) is expected
    assert sniff_format(data) is expected


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (_ftyp(b"heic", b"mif1", b"heic"), ImageFormat.HEIF),
        (_ftyp(b"mif1", b"mif1", b"heic"), ImageFormat.HEIF),
        (_ftyp(b"mif1", b"mif1", b"avif"), ImageFormat.AVIF),
        (_ftyp(b"avis", b"msf1"), ImageFormat.AVIF),
        (_ftyp(b"isom", b"mp41"), None),  # an MP4 video is not an image
        (b"MM\x00*\x00\x00\x00\x08", ImageFormat.TIFF),
        (b"II+\x00\x08\x00\x00\x00", ImageFormat.TIFF),  # BigTIFF
        (b"GIF87a\x01\x00", ImageFormat.GIF),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),  # RIFF but not WebP
        (b"", None),
        (b"\xff\xd8", None),  # too short to be a JPEG
    ],
)
def test_sniffs_handcrafted_headers(head: bytes, expected: ImageFormat | None) -> None:
    assert sniff_format(head) is expected


@pytest.mark.parametrize(
    "data",
    [samples.noise_bytes(), samples.SVG, b"%PDF-1.7\n", b"1,2,3\n4,5,6\n", b"2 2\n1 2\n3 4\n"],
    ids=["noise", "svg", "pdf", "csv", "matrix"],
)
def test_rejects_non_images(data: bytes) -> None:
    assert sniff_format(data) is None


def test_vips_native_format_is_not_sniffed(tmp_path: Path) -> None:
    assert sniff_format(samples.vips_native(tmp_path)) is None
