"""The web console (docs/console.md): plain HTML, CSS and ES modules shipped in the package
(package data, no build step), served by the API at /console when THUMBNAIL_CONSOLE_ENABLED
is true. The pages call the API itself from the browser, with the key the user enters."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files

INDEX = "index.html"
# Only files with one of these suffixes are served; each with its own type (and nosniff).
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str  # quoted SHA-256 of the body: a strong ETag


def load_assets() -> dict[str, Asset]:
    """Every file of static/ by name, read once (a few kilobytes). The names are the only
    paths the console serves: nothing outside this table is ever opened."""
    assets: dict[str, Asset] = {}
    for entry in files(__name__).joinpath("static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if entry.is_file() and suffix in CONTENT_TYPES:
            body = entry.read_bytes()
            etag = f'"{hashlib.sha256(body).hexdigest()}"'
            assets[entry.name] = Asset(body, CONTENT_TYPES[suffix], etag)
    if INDEX not in assets:
        raise RuntimeError(f"the console's {INDEX} is missing from the installed package")
    return assets
