"""The locally built container images (``tools/build-images.sh``, ``make images``).

The build writes ``index.json`` into its cache: for each component (server, worker, operator,
postgresql, redis, minio, mc, wait, pause) the local image reference, whose tag is the hash of
the image's inputs, and the ``docker save``-layout archive to import with
``ctr -n k8s.io images import``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from thumbnail_substrate.errors import SubstrateError

COMPONENTS = ("server", "worker", "operator", "postgresql", "redis", "minio", "mc", "wait", "pause")


@dataclass(frozen=True)
class LocalImage:
    ref: str
    """e.g. ``localhost/thumbnail-postgresql:<input hash>``"""
    archive: Path
    """the image as a ``docker save`` tar"""


def images_cache() -> Path:
    """Where ``tools/build-images.sh`` keeps its archives and index (same rule as the script)."""
    if explicit := os.environ.get("THUMBNAIL_IMAGES_CACHE"):
        return Path(explicit)
    return Path(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
        "thumbnail-platform",
        "images",
    )


def index_path() -> Path:
    return images_cache() / "index.json"


def local_images(required: tuple[str, ...] = COMPONENTS) -> dict[str, LocalImage]:
    """Every image in the index, by component; a missing index, archive or required component
    is a SubstrateError that says to run ``make images``."""
    path = index_path()
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise SubstrateError(f"no image index at {path}: run `make images`") from None
    except (OSError, ValueError) as exc:
        raise SubstrateError(f"unreadable image index {path} ({exc}): run `make images`") from None
    if not isinstance(raw, dict):
        raise SubstrateError(f"image index {path} is not a JSON object: run `make images`")
    images: dict[str, LocalImage] = {}
    for name, entry in raw.items():
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("ref"), str)
            and isinstance(entry.get("archive"), str)
        ):
            raise SubstrateError(f"image index {path}: bad entry {name!r}: run `make images`")
        images[name] = LocalImage(ref=entry["ref"], archive=Path(entry["archive"]))
    missing = [name for name in required if name not in images]
    if missing:
        raise SubstrateError(
            f"image index {path} lacks {', '.join(missing)}: run `make images`"
        )
    for name, image in images.items():
        if not image.archive.is_file():
            raise SubstrateError(
                f"image archive of {name} is missing ({image.archive}): run `make images`"
            )
    return images
