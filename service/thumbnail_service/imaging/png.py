"""PNG text chunks are dropped before libvips sees the bytes.

libvips' PNG loader (libspng) inflates every tEXt/zTXt/iTXt chunk that precedes the image
data into a metadata string while it reads the *header*, with no size limit: a 64x64 PNG
carrying a 49 KB zTXt chunk that inflates to 50 MB cost 0.2 s of CPU and 50 MB of memory per
header read (the API's probe; the worker reads the header three times), and a 20 MB upload
holds 400 such chunks. We never use text metadata (thumbnails are written without any), so
the chunks are cut out by walking the chunk list, which reads 12 bytes per chunk and inflates
nothing. Text after the first IDAT is not read by the header and, as measured, not inflated
by the decode either; the walk stops there, so its cost is bounded by the chunks before the
image data, at most MAX_CHUNKS_BEFORE_IDAT (real files have a handful).
"""

from __future__ import annotations

from .errors import CorruptImageError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt"})
MAX_CHUNKS_BEFORE_IDAT = 1024


def without_text_chunks(data: bytes) -> bytes:
    """`data` without the text chunks before its first IDAT; `data` itself (no copy) when
    it is not a PNG or has none. More than MAX_CHUNKS_BEFORE_IDAT chunks before the image
    data is CorruptImageError; a malformed chunk list is left for libvips to refuse."""
    if not data.startswith(SIGNATURE):
        return data
    keep: list[bytes] = []
    start, position = 0, len(SIGNATURE)
    for _ in range(MAX_CHUNKS_BEFORE_IDAT + 1):  # the last one must be the IDAT
        if position + 8 > len(data):
            break
        end = position + 12 + int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        if kind == b"IDAT" or end > len(data):
            break
        if kind in TEXT_CHUNKS:
            keep.append(data[start:position])
            start = end
        position = end
    else:
        raise CorruptImageError(f"more than {MAX_CHUNKS_BEFORE_IDAT} PNG chunks before the pixels")
    if not keep:
        return data
    keep.append(data[start:])
    return b"".join(keep)
