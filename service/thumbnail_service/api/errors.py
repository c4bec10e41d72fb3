"""One error shape for every 4xx/5xx: {"error": {"code", "message", "field"}}.

Handlers are installed for our errors, FastAPI validation errors, Starlette HTTP errors,
dependency outages (503) and, as a last resort, anything else (a generic 500 that never
carries a stack trace).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ..errors import DependencyUnavailable

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    # `field` is always sent (null when no field is at fault): the schema says so.
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    code: str = Field(description="Stable machine-readable error code.")
    message: str = Field(description="Human-readable explanation.")
    field: str | None = Field(default=None, description="The request field at fault, if any.")


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code, message=message, field=field))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the given error statuses."""
    described = {
        400: "Malformed request: not valid HTTP/1.1, a broken multipart body, an empty "
        "Idempotency-Key or a cursor this API did not return.",
        401: "Missing or invalid X-API-Key header.",
        403: "A rendition URL whose signature does not match its path, or a submission past "
        "the tenant's storage quota.",
        404: "No such job or thumbnail.",
        409: "Conflict with the job's current state or an earlier request.",
        413: "Upload larger than THUMBNAIL_MAX_UPLOAD_BYTES.",
        415: "Not an image, a format that is not allowed, or not multipart/form-data.",
        422: "An option or parameter is invalid (`field` names it), or the image is too large "
        "in pixels or has an unreadable header.",
        429: "The API key's rate limit is used up for this minute; retry after Retry-After.",
        503: "A dependency (postgresql, redis or minio) is unavailable; retry later.",
    }
    headers = {
        401: {
            "WWW-Authenticate": {
                "required": True,
                "description": "The header the key belongs in: X-API-Key.",
                "schema": {"type": "string"},
            }
        },
        429: {
            "Retry-After": {
                "required": True,
                "description": "Seconds until the key's window ends.",
                "schema": {"type": "integer", "minimum": 1},
            }
        },
        503: {
            "Retry-After": {
                "required": True,
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer", "minimum": 1},
            }
        },
    }
    if 401 in statuses:  # an authenticated operation: its key's rate limit applies too
        statuses = tuple(sorted({*statuses, 429}))
    return {
        s: {"model": ErrorResponse, "description": described[s]}
        | ({"headers": headers[s]} if s in headers else {})
        for s in statuses
    }


def document_validation_errors(openapi: dict[str, Any]) -> None:
    """FastAPI documents its own 422 body ({"detail": [...]}, HTTPValidationError) on every
    route with parameters that does not list 422 itself, but validation_error (below) answers
    each of them in the error shape: document that, and drop FastAPI's unused models."""
    fastapi_422 = {"$ref": "#/components/schemas/HTTPValidationError"}
    for operations in openapi["paths"].values():
        for operation in operations.values():
            response = operation["responses"].get("422", {})
            body = response.get("content", {}).get("application/json", {})
            if body.get("schema") == fastapi_422:
                response["description"] = "A parameter is invalid; `field` names it."
                body["schema"] = {"$ref": "#/components/schemas/ErrorResponse"}
    schemas = openapi.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


# Methods a 405 may list: every method HTTP defines for resources (CONNECT/TRACE are not).
_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method the app's router would route at this request's path: asked of the router
    itself, once per method, so nested routers and every route of the path count."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in routes
        )
    ]


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
        field = ".".join(loc) or None
        message = str(first.get("msg", "invalid request"))
        return error_response(
            422, "invalid_parameter", f"{field}: {message}" if field else message, field
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        headers = dict(exc.headers) if exc.headers else {}
        message = str(exc.detail)
        if exc.status_code == 405:
            # Starlette names the methods of the first route whose path matched; a path
            # served by several routes (GET and POST /v1/jobs) needs all of them.
            allowed = allowed_methods(request)
            headers["Allow"] = ", ".join(allowed)
            message = f"{request.method} is not allowed here; allowed: {', '.join(allowed)}"
        return error_response(exc.status_code, code, message, headers=headers or None)

    async def dependency_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DependencyUnavailable)
        log.warning("dependency unavailable: %s", exc)
        return error_response(
            503,
            "dependency_unavailable",
            f"{exc.dependency} is unavailable, retry later",
            headers={"Retry-After": "5"},
        )

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "internal error; it has been logged")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(DependencyUnavailable, dependency_error)
    app.add_exception_handler(Exception, unexpected)
