"""/console: the web console's static files (thumbnail_service.console), when
THUMBNAIL_CONSOLE_ENABLED is true; not in the OpenAPI document (it is not part of the API)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ...console import INDEX, Asset, load_assets
from ..errors import ApiError

# The page runs only its own script and style, talks only to this API, shows thumbnails as
# blob: URLs (fetched with the key), and can be neither framed nor used to submit a form.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Unversioned names: a browser may keep them, but asks (If-None-Match) before each use.
    "Cache-Control": "no-cache",
}


def _serve(asset: Asset, request: Request) -> Response:
    headers = {**SECURITY_HEADERS, "ETag": asset.etag}
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.content_type, headers=headers)


def build_router() -> APIRouter:
    assets = load_assets()
    # The page itself is /console (its links are relative to that), never /console/index.html.
    files = {name: asset for name, asset in assets.items() if name != INDEX}
    router = APIRouter(include_in_schema=False)

    @router.get("/console")
    async def console_page(request: Request) -> Response:
        return _serve(assets[INDEX], request)

    @router.get("/console/{name}")
    async def console_file(name: str, request: Request) -> Response:
        asset = files.get(name)
        if asset is None:
            raise ApiError(404, "not_found", f"the console has no file {name!r}")
        return _serve(asset, request)

    return router
