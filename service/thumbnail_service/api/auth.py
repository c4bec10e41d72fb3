"""API-key authentication (X-API-Key), applied to /v1 and /debug routes."""

from __future__ import annotations

import hmac

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from ..keys import DEFAULT_TENANT, Principal, env_key_id
from .deps import Services
from .errors import ApiError
from .metrics import KEY_REQUESTS

API_KEY_HEADER = "X-API-Key"
_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="One of THUMBNAIL_API_KEYS (not needed when THUMBNAIL_AUTH_ENABLED=false).",
)


async def require_api_key(request: Request, key: str | None = Security(_scheme)) -> None:
    """Who is asking: request.state.principal (tenant and key id), or a 401. The keys of
    THUMBNAIL_API_KEYS are the default tenant's; any other is looked up (keys.py)."""
    services = request.app.state.services
    settings = services.settings
    if not settings.auth_enabled:
        request.state.principal = Principal(DEFAULT_TENANT, "anonymous")
        return
    if key:
        offered = key.encode()
        # Compare against every key (constant time each) so timing reveals nothing.
        matches = [
            hmac.compare_digest(offered, k.get_secret_value().encode()) for k in settings.api_keys
        ]
        found = (Principal(DEFAULT_TENANT, env_key_id(key)) if any(matches)
                 else await services.keys.lookup(key))
        if found is not None:
            await _within_rate_limit(services, found)
            request.state.principal = found
            return
    raise ApiError(
        401,
        "unauthorized",
        f"missing or invalid {API_KEY_HEADER} header",
        headers={"WWW-Authenticate": API_KEY_HEADER},
    )


async def _within_rate_limit(services: Services, principal: Principal) -> None:
    limit = principal.rate_limit_per_minute
    if limit is None:
        limit = services.settings.rate_limit_per_minute
    wait = await services.limiter.retry_after(principal.key_id, limit) if limit else None
    KEY_REQUESTS.labels(principal.tenant, principal.key_id, "limited" if wait else "allowed").inc()
    if wait:
        raise ApiError(
            429,
            "rate_limited",
            f"key {principal.key_id} made more than {limit} requests this minute; "
            f"retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )


def current_principal(request: Request) -> Principal:
    """The authenticated caller (require_api_key ran first: it guards every /v1 route)."""
    principal: Principal = request.state.principal
    return principal
