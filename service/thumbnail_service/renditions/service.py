"""The rendition use case: serve the stored rendition, else render it once and store it.

Once per cache key: concurrent requests in this process share one render task (a client
that disconnects does not abort it: the result is stored for the next one); across API
replicas a Redis lock elects one renderer and the others wait for its object to appear.
Renders run in their own killable child processes (rendering/), under the same limits as
jobs: allowed formats, decoded pixels, time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Literal
from uuid import UUID

from ..blocking import BlockingCalls
from ..errors import DependencyUnavailable
from ..imaging import OutputFormat, RenderOptions, SizeSpec, Thumbnail
from ..rendering.factory import build_renderer
from ..rendering.protocol import Renderer
from ..repository import JobRepository
from ..settings import Settings
from ..storage import ObjectNotFound, Storage, renditions_prefix
from .locks import RenditionLocks
from .options import RenditionSpec

log = logging.getLogger(__name__)
# How often a replica waiting for another one's render looks for the stored object.
_POLL_SECONDS = 0.1


class RenditionNotFound(Exception):
    """No such job, or its original is gone."""


@dataclass(frozen=True)
class Rendition:
    data: bytes = field(repr=False)
    content_type: str
    sha256: str
    # stored: read from storage; rendered: by this request; coalesced: by a concurrent one.
    outcome: Literal["stored", "rendered", "coalesced"]


def rendition_key(job_id: UUID, spec: RenditionSpec, accept: frozenset[OutputFormat]) -> str:
    variant = f"{spec.canonical()}|accept:{','.join(sorted(accept))}"
    return renditions_prefix(job_id) + hashlib.sha256(variant.encode()).hexdigest()[:32]


class Renditions:
    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        repository: JobRepository,
        locks: RenditionLocks,
    ) -> None:
        self._settings = settings
        self._storage = storage
        self._repository = repository
        self._locks = locks
        self._renderer: Renderer | None = None  # started on the first render
        # A render that waits longer than a dependency call for a free render process is
        # answered 503 (back-pressure), not queued without bound.
        self._render_calls = BlockingCalls(
            "renderer", settings.rendition_processes, settings.dependency_timeout_seconds
        )
        self._inflight: dict[str, asyncio.Task[Rendition]] = {}
        # Longest a render may hold the lock: its time limit, the kill grace and slack.
        self._lock_seconds = settings.job_timeout_seconds + settings.render_kill_grace_seconds + 5

    def close(self) -> None:
        self._locks.close()
        self._render_calls.close()
        if self._renderer is not None:
            self._renderer.close()

    async def get(
        self, job_id: UUID, spec: RenditionSpec, accept: frozenset[OutputFormat]
    ) -> Rendition:
        key = rendition_key(job_id, spec, accept)
        stored = await self._stored(key)
        if stored is not None:
            return stored
        task = self._inflight.get(key)
        if task is not None:
            return replace(await asyncio.shield(task), outcome="coalesced")
        task = asyncio.create_task(self._render_once(job_id, spec, accept, key))
        self._inflight[key] = task
        task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task)

    def _finished(self, key: str, task: asyncio.Task[Rendition]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: every requester may have gone (disconnected)

    async def _stored(self, key: str) -> Rendition | None:
        try:
            found = await self._storage.get_described(self._storage.thumbnails, key)
        except ObjectNotFound:
            return None
        digest = found.metadata.get("sha256") or hashlib.sha256(found.data).hexdigest()
        return Rendition(found.data, found.content_type, digest, "stored")

    async def _render_once(
        self, job_id: UUID, spec: RenditionSpec, accept: frozenset[OutputFormat], key: str
    ) -> Rendition:
        try:
            token = await self._locks.acquire(key, self._lock_seconds)
        except DependencyUnavailable as exc:  # render anyway: once per replica
            log.warning("rendition lock unavailable, rendering without it: %s", exc)
            token = ""
        if token is None:
            rendered_elsewhere = await self._wait_for_other_replica(key)
            if rendered_elsewhere is not None:
                return replace(rendered_elsewhere, outcome="coalesced")
        try:
            return await self._render_and_store(job_id, spec, accept, key)
        finally:
            if token:
                with contextlib.suppress(DependencyUnavailable):
                    await self._locks.release(key, token)

    async def _wait_for_other_replica(self, key: str) -> Rendition | None:
        """The other replica's stored result, or None once its lock is gone without one."""
        deadline = time.monotonic() + self._lock_seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(_POLL_SECONDS)
            stored = await self._stored(key)
            if stored is not None:
                return stored
            with contextlib.suppress(DependencyUnavailable):
                if not await self._locks.held(key):
                    return await self._stored(key)
        return None

    async def _render_and_store(
        self, job_id: UUID, spec: RenditionSpec, accept: frozenset[OutputFormat], key: str
    ) -> Rendition:
        job = await self._repository.get(job_id)
        if job is None:
            raise RenditionNotFound(f"no job {job_id}")
        try:
            original = await self._storage.get(self._storage.originals, job.original_key)
        except ObjectNotFound:
            raise RenditionNotFound(f"job {job_id} has no stored original") from None
        thumbnail = await self._render(original, spec, accept)
        digest = hashlib.sha256(thumbnail.data).hexdigest()
        await self._storage.put(self._storage.thumbnails, key, thumbnail.data,
                                thumbnail.content_type, metadata={"sha256": digest})
        if await self._repository.get(job_id) is None:  # deleted while this rendered
            await self._storage.delete(self._storage.thumbnails, [key])
            raise RenditionNotFound(f"job {job_id} was deleted")
        return Rendition(thumbnail.data, thumbnail.content_type, digest, "rendered")

    async def _render(
        self, original: bytes, spec: RenditionSpec, accept: frozenset[OutputFormat]
    ) -> Thumbnail:
        options = RenderOptions(
            sizes=(SizeSpec("rendition", spec.width, spec.height),),
            fit=spec.fit,
            format=spec.format,
            quality=spec.quality,
            accept=accept,
        )
        settings = self._settings
        if self._renderer is None:
            self._renderer = build_renderer(settings, processes=settings.rendition_processes)
        renderer = self._renderer
        (thumbnail,) = await self._render_calls.run(
            lambda: renderer.render(
                original,
                options,
                allowed=settings.allowed_format_set,
                max_pixels=settings.max_pixels,
                timeout_seconds=settings.job_timeout_seconds,
            )
        )
        return thumbnail
