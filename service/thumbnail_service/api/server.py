"""What the HTTP server itself answers, in the API's error shape.

Two answers never reach the FastAPI app, so its handlers cannot shape them:

* uvicorn's 400 for a request it cannot parse (garbage request line, a header without a
  colon, a bad Content-Length or chunk size, an HTTP/2 preface), written as text/plain
  "Invalid HTTP request received." by its protocol class. `JsonErrorHttpToolsProtocol`
  writes the same 400 as `{"error": {...}}`; `thumbnail-api` runs uvicorn with
  `HTTP_PROTOCOL` (it, in place of the httptools protocol uvicorn's "auto" picks).
* A WebSocket handshake: with no WebSocket route the router closes the socket and uvicorn
  answers 403 with an empty text/plain body. `RefuseWebSockets` answers it through the ASGI
  denial-response extension instead, with the same 403 as JSON.
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MALFORMED_REQUEST = "malformed_request"


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "field": None}}).encode()


def _json_400(protocol: HttpToolsProtocol, reason: str) -> None:
    """uvicorn's send_400_response, with a JSON body (and then, as there, the connection
    closed: after a request we could not parse, nothing else on it can be trusted)."""
    body = _error_body(
        MALFORMED_REQUEST, f"the request is not valid HTTP/1.1: {reason.rstrip('.')}"
    )
    head = [b"HTTP/1.1 400 Bad Request\r\n"]
    for name, value in protocol.server_state.default_headers:  # date, server
        head += [name, b": ", value, b"\r\n"]
    head += [
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n\r\n",
    ]
    transport = protocol.transport
    transport.write(b"".join(head) + body)
    transport.close()


class JsonErrorHttpToolsProtocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        _json_400(self, msg)


# What uvicorn's "auto" picks: httptools, always installed with uvicorn[standard].
HTTP_PROTOCOL: type[asyncio.Protocol] = JsonErrorHttpToolsProtocol


class RefuseWebSockets:
    """The API has no WebSocket endpoints: refuse every handshake with a JSON 403."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        await receive()  # websocket.connect
        if "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": 1008})
            return
        body = _error_body("websocket_not_supported", "this API has no WebSocket endpoints")
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
