"""API-key authentication (X-API-Key), applied to /v1 and /debug routes."""

from __future__ import annotations

import hmac

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from .errors import ApiError

API_KEY_HEADER = "X-API-Key"
_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="One of THUMBNAIL_API_KEYS (not needed when THUMBNAIL_AUTH_ENABLED=false).",
)


async def require_api_key(request: Request, key: str | None = Security(_scheme)) -> None:
    settings = request.app.state.services.settings
    if not settings.auth_enabled:
        return
    if key:
        offered = key.encode()
        # Compare against every key (constant time each) so timing reveals nothing.
        matches = [
            hmac.compare_digest(offered, k.get_secret_value().encode()) for k in settings.api_keys
        ]
        if any(matches):
            return
    raise ApiError(
        401,
        "unauthorized",
        f"missing or invalid {API_KEY_HEADER} header",
        headers={"WWW-Authenticate": API_KEY_HEADER},
    )
