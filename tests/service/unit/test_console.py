"""The web console's route (issue #17): off unless THUMBNAIL_CONSOLE_ENABLED, then its files
with their types and security headers, nothing outside its own table, nothing in OpenAPI.
The page itself, in a real browser against the real stack: test_console_browser_real.py."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import AsyncIterator
from importlib.resources import files
from pathlib import Path

import httpx
import pytest

from tests.deploy.support import ROOT, pyproject
from thumbnail_service.api.app import create_app
from thumbnail_service.api.routes.console import CONTENT_SECURITY_POLICY
from thumbnail_service.console import CONTENT_TYPES, load_assets
from thumbnail_service.settings import Settings

STATIC = Path(str(files("thumbnail_service.console").joinpath("static")))
ON_DISK = {p.name: p.read_bytes() for p in STATIC.iterdir() if p.is_file()}
EXPECTED_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


async def _client(enabled: bool) -> AsyncIterator[httpx.AsyncClient]:
    # No lifespan: the console's routes need no database, queue or storage.
    app = create_app(Settings(console_enabled=enabled))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client


@pytest.fixture
async def console() -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(True):
        yield client


@pytest.fixture
async def no_console() -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(False):
        yield client


def test_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THUMBNAIL_CONSOLE_ENABLED", raising=False)
    assert Settings().console_enabled is False
    monkeypatch.setenv("THUMBNAIL_CONSOLE_ENABLED", "true")
    assert Settings().console_enabled is True


@pytest.mark.parametrize("path", ["/console", "/console/console.js", "/console/console.css"])
async def test_disabled_console_is_a_404_in_the_error_shape(
    no_console: httpx.AsyncClient, path: str
) -> None:
    response = await no_console.get(path)
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "Not Found", "field": None}
    }


async def test_page_and_headers(console: httpx.AsyncClient) -> None:
    response = await console.get("/console")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == EXPECTED_CSP == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-cache"
    assert re.fullmatch(r'"[0-9a-f]{64}"', response.headers["etag"])
    assert "<title>Thumbnail console</title>" in response.text

    again = await console.get("/console", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["content-security-policy"] == EXPECTED_CSP


async def test_every_static_file_is_served_with_its_type(console: httpx.AsyncClient) -> None:
    assert {"index.html", "console.js", "console.css"} <= set(ON_DISK)
    assert set(ON_DISK) == set(load_assets()), "a file in static/ the console would not serve"
    for name in sorted(set(ON_DISK) - {"index.html"}):
        response = await console.get(f"/console/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == CONTENT_TYPES[Path(name).suffix], name
        assert response.headers["content-security-policy"] == EXPECTED_CSP, name
        assert response.headers["x-content-type-options"] == "nosniff", name
        assert response.content == ON_DISK[name], name


@pytest.mark.parametrize(
    "path",
    [
        "/console/index.html",  # the page is /console: its relative links break elsewhere
        "/console/__init__.py",  # the package's code, next to static/
        "/console/..%2F__init__.py",
        "/console/..%2f..%2fsettings.py",
        "/console/%2e%2e/%2e%2e/settings.py",
        "/console/static/console.js",
        "/console/console.js%00.html",
        "/console/CONSOLE.JS",
        "/console/nope.js",
    ],
)
async def test_nothing_outside_the_console_files(console: httpx.AsyncClient, path: str) -> None:
    response = await console.get(path)
    assert response.status_code == 404, path
    assert response.json()["error"]["code"] == "not_found"


async def test_console_is_not_in_the_openapi_document(console: httpx.AsyncClient) -> None:
    paths = (await console.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if "console" in p]
    assert "/v1/jobs" in paths


def test_no_inline_script_or_style_and_nothing_from_elsewhere() -> None:
    page = (STATIC / "index.html").read_text()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", page, flags=re.S)
    assert scripts and all('src="' in attrs and not body.strip() for attrs, body in scripts)
    assert "<style" not in page
    assert not re.search(r"\sstyle=", page)
    assert not re.search(r"\son[a-z]+=", page), "an inline event handler"
    for name in ("index.html", "console.js", "console.css"):
        text = (STATIC / name).read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, flags=re.I), name
        assert "innerHTML" not in text and "eval(" not in text, name


def test_the_files_ship_in_the_package() -> None:
    """pip install / the image wheels take package data from this list only."""
    patterns = pyproject()["tool"]["setuptools"]["package-data"]["thumbnail_service"]
    package = ROOT / "service" / "thumbnail_service"
    for path in STATIC.iterdir():
        relative = path.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), relative
