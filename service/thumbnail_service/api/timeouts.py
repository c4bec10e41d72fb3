"""Request timeouts in the HTTP layer: no client holds a connection or a request open for
long without sending it (slowloris, stalled uploads).

uvicorn bounds only the idle time between two requests (`timeout_keep_alive`). Added here:

* **Headers** (`with_header_timeout`, the protocol class): a request's headers must be
  complete within `THUMBNAIL_HTTP_HEADER_TIMEOUT_SECONDS` of the connection opening or of the
  previous response. Past it the connection is closed, with a `408` in the API's error shape
  if part of a request had arrived.
* **Body** (`RequestTimeouts`, ASGI middleware): the body must keep coming (no pause longer
  than `THUMBNAIL_HTTP_BODY_IDLE_TIMEOUT_SECONDS`) and be complete within
  `THUMBNAIL_HTTP_BODY_TIMEOUT_SECONDS` of the request's start; past either, `408` and the
  connection is closed.
* **Declared size**: a `Content-Length` above what any request may carry (the upload limit
  plus the multipart overhead) is answered `413` at once, from the header, before any of the
  body is awaited; the connection is then closed (after reading a bounded amount of whatever
  the client is still sending, so that it sees the answer rather than a reset).
"""

from __future__ import annotations

import asyncio
import json
import logging
from asyncio import TimerHandle
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = "request_timeout"
# After an early 413: how much of a body still being sent is read (and dropped) before the
# connection is closed, so that a client writing its upload reads the 413 and not a reset.
DRAIN_MAX_BYTES = 64 * 1024 * 1024
DRAIN_MAX_SECONDS = 5.0
DRAIN_IDLE_SECONDS = 1.0


def _error_json(code: str, message: str, field: str | None = None) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "field": field}}).encode()


# --- headers: the protocol -----------------------------------------------------------------


def with_header_timeout(base: type[Any], seconds: float) -> type[HttpToolsProtocol]:
    """`base` (uvicorn's httptools protocol or a subclass) with a deadline for headers."""
    if not issubclass(base, HttpToolsProtocol):
        raise TypeError(f"{base!r} is not an httptools protocol class")

    class HeaderDeadlineProtocol(base):  # type: ignore[misc]
        header_timeout_seconds = seconds
        _header_timer: TimerHandle | None = None
        _request_begun = False

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_timer()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            if self._header_timer is not None:
                self._request_begun = True
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._disarm_header_timer()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            pipelined = bool(self.pipeline)  # its headers are complete already
            super().on_response_complete()
            if not pipelined and not self.transport.is_closing():
                self._arm_header_timer()

        def _arm_header_timer(self) -> None:
            self._disarm_header_timer()
            self._request_begun = False
            self._header_timer = self.loop.call_later(
                self.header_timeout_seconds, self._header_deadline_passed
            )

        def _disarm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_deadline_passed(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            if self._request_begun:
                message = (
                    f"the request headers were not complete within "
                    f"{self.header_timeout_seconds:g}s"
                )
                log.info("closing %s: %s", _peer(self.client), message)
                body = _error_json(REQUEST_TIMEOUT, message)
                head = [b"HTTP/1.1 408 Request Timeout\r\n"]
                for name, value in self.server_state.default_headers:
                    head += [name, b": ", value, b"\r\n"]
                head += [
                    b"content-type: application/json\r\n",
                    b"content-length: %d\r\n" % len(body),
                    b"connection: close\r\n\r\n",
                ]
                self.transport.write(b"".join(head) + body)
            self.transport.close()

    HeaderDeadlineProtocol.__name__ = HeaderDeadlineProtocol.__qualname__ = (
        f"HeaderDeadline{base.__name__}"
    )
    return HeaderDeadlineProtocol


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "a client"


# --- body: the middleware ------------------------------------------------------------------


class BodyTimeout(Exception):
    """The request body stalled or took too long (answered 408 by `RequestTimeouts`)."""


class RequestTimeouts:
    def __init__(
        self,
        app: ASGIApp,
        *,
        idle_seconds: float,
        total_seconds: float,
        max_body_bytes: int,
        max_upload_bytes: int,
    ) -> None:
        self.app = app
        self.idle = idle_seconds
        self.total = total_seconds
        self.max_body = max_body_bytes
        self.max_upload = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body:
            await self._refuse_too_large(int(declared), headers, receive, send)
            return

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total
        body_done = False
        response_started = False

        async def bounded_receive() -> Message:
            nonlocal body_done
            if body_done:  # later receives wait for a disconnect: not bounded
                return await receive()
            left = deadline - loop.time()
            if left <= 0:
                raise BodyTimeout(f"the request body was not complete within {self.total:g}s")
            try:
                async with asyncio.timeout(min(self.idle, left)):
                    message = await receive()
            except TimeoutError:
                if left <= self.idle:
                    raise BodyTimeout(
                        f"the request body was not complete within {self.total:g}s"
                    ) from None
                raise BodyTimeout(
                    f"the request body stalled: nothing received for {self.idle:g}s"
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracking_send)
        except Exception as exc:
            timeout = _body_timeout_in(exc)
            if timeout is None or response_started:
                raise
            log.info("closing %s: %s", _peer(scope.get("client")), timeout)
            await _send_json(send, 408, _error_json(REQUEST_TIMEOUT, str(timeout)))

    async def _refuse_too_large(
        self, declared: int, headers: dict[bytes, bytes], receive: Receive, send: Send
    ) -> None:
        body = _error_json(
            "payload_too_large",
            f"the request declares {declared} bytes; uploads are limited to "
            f"{self.max_upload} bytes",
            "file",
        )
        expects_continue = b"100-continue" in headers.get(b"expect", b"").lower()
        # The whole answer goes out now; the empty last part (after the drain) completes
        # the response, upon which uvicorn closes the connection (Connection: close).
        await _send_json(send, 413, body, more_body=not expects_continue)
        if expects_continue:
            return  # the client waits for 100 Continue, which it never gets: no body
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_MAX_SECONDS
        drained = 0
        while drained <= DRAIN_MAX_BYTES and (left := deadline - loop.time()) > 0:
            try:
                async with asyncio.timeout(min(DRAIN_IDLE_SECONDS, left)):
                    message = await receive()
            except TimeoutError:
                break
            if message["type"] != "http.request":
                break
            drained += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _send_json(send: Send, status: int, body: bytes, *, more_body: bool = False) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": more_body})


def _body_timeout_in(exc: BaseException) -> BodyTimeout | None:
    """The BodyTimeout behind `exc`, also when a task group wrapped it."""
    while isinstance(exc, BaseExceptionGroup):
        if len(exc.exceptions) != 1:
            matched = exc.subgroup(BodyTimeout)
            return _body_timeout_in(matched.exceptions[0]) if matched else None
        exc = exc.exceptions[0]
    return exc if isinstance(exc, BodyTimeout) else None
