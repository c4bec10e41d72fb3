"""The webhook outbox loop, run by every sweeper next to its lease sweep and by every API
process (so webhooks go out while the workers are scaled to zero).

Claim due webhooks (SKIP LOCKED, leased), POST each job's document to its callback URL,
signed (signing.py), to the address the SSRF guard checked (targets.py), without following
redirects; record the attempt; a 2xx is delivered, anything else is retried with doubling
backoff until THUMBNAIL_WEBHOOK_MAX_ATTEMPTS, a refused address fails at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import time
from datetime import UTC, datetime
from urllib.parse import SplitResult

import httpx

from ..errors import DependencyUnavailable
from ..jobs import CallbackAttempt, JobRecord
from ..repository import JobRepository
from ..settings import Settings
from .signing import SIGNATURE_HEADER, signature_header
from .targets import CallbackRefused, Resolver, parse_callback_url, resolve_checked

log = logging.getLogger(__name__)
CLAIM_LIMIT = 16  # webhooks delivered at once by one sweeper
USER_AGENT = "thumbnail-service-webhooks/1"


def payload(job: JobRecord) -> bytes:
    """What a receiver gets: the event type and the job document (links as paths)."""
    # Imported here, not at the top: the API's models pull in FastAPI, which the sweeper
    # (a process whose readiness waits for its first beat) should not load at startup.
    from ..api.schemas import JobOut

    document = JobOut.from_record(job, None).model_dump(mode="json")
    return json.dumps({"type": f"job.{job.status}", "job": document},
                      separators=(",", ":")).encode()


def backoff_seconds(settings: Settings, attempt: int) -> float:
    """Wait after failed attempt number `attempt` (1-based): doubling, capped."""
    return float(min(settings.webhook_retry_min_seconds * 2 ** (attempt - 1),
                     settings.webhook_retry_max_seconds))


class Deliverer:
    def __init__(
        self, settings: Settings, repository: JobRepository, resolver: Resolver | None = None
    ) -> None:
        self._settings = settings
        self._repository = repository
        self._resolver = resolver
        self._secrets = [s.get_secret_value().encode() for s in settings.webhook_secrets]
        self._http = httpx.AsyncClient(
            timeout=settings.webhook_timeout_seconds, follow_redirects=False, trust_env=False
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def deliver_due(self) -> int:
        """One pass: every webhook due now (bounded by CLAIM_LIMIT); returns how many."""
        lease = self._settings.webhook_timeout_seconds * 2 + 10
        jobs = await self._repository.claim_due_callbacks(CLAIM_LIMIT, lease)
        await asyncio.gather(*(self._deliver(job) for job in jobs))
        return len(jobs)

    async def _deliver(self, job: JobRecord) -> None:
        assert job.callback is not None
        number = len(job.callback.attempts) + 1
        started = datetime.now(UTC)
        status: int | None = None
        permanent = False
        try:
            status = await self._post(job)
            error = None if 200 <= status < 300 else f"answered HTTP {status}"
        except CallbackRefused as exc:
            error, permanent = str(exc), True
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if error is None:
            state, retry_in = "delivered", 0.0
        elif permanent or number >= self._settings.webhook_max_attempts:
            state, retry_in = "failed", 0.0
        else:
            state, retry_in = "pending", backoff_seconds(self._settings, number)
        log.log(logging.INFO if error is None else logging.WARNING,
                "webhook of job %s, attempt %d: %s", job.id, number, error or f"HTTP {status}")
        await self._repository.record_callback_attempt(
            job.id, CallbackAttempt(number, started, status, error), state, retry_in
        )

    async def _post(self, job: JobRecord) -> int:
        assert job.callback is not None
        parts = parse_callback_url(job.callback.url)
        address = await asyncio.to_thread(
            resolve_checked, parts, self._settings.webhook_networks,
            *([self._resolver] if self._resolver else []),
        )
        body = payload(job)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Host": parts.netloc,
            "Webhook-Id": str(job.id),  # the same on every retry: receivers deduplicate by it
            SIGNATURE_HEADER: signature_header(self._secrets, int(time.time()), body),
        }
        response = await self._http.post(
            _pinned(parts, address), content=body, headers=headers,
            extensions={"sni_hostname": parts.hostname} if parts.scheme == "https" else {},
        )
        return response.status_code


def _pinned(parts: SplitResult, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The URL with its host replaced by the checked address (Host header and TLS SNI keep
    the name): no second DNS lookup between the check and the connection."""
    host = f"[{address}]" if address.version == 6 else str(address)
    port = f":{parts.port}" if parts.port else ""
    return parts._replace(netloc=f"{host}{port}").geturl()


async def deliver_until_stopped(
    settings: Settings, repository: JobRepository, stop: asyncio.Event
) -> None:
    """The outbox, every THUMBNAIL_WEBHOOK_POLL_SECONDS (at once again while a pass found
    work) until `stop`. Without a secret nothing is sent: a webhook is never unsigned, and
    pending ones wait for one."""
    if not settings.webhook_secrets:
        return
    deliverer = Deliverer(settings, repository)
    try:
        while not stop.is_set():
            delivered = 0
            try:
                delivered = await deliverer.deliver_due()
            except DependencyUnavailable as exc:
                log.warning("webhooks: %s", exc)
            except Exception:
                log.exception("webhooks: unexpected error")
            if not delivered:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), settings.webhook_poll_seconds)
    finally:
        await deliverer.close()
