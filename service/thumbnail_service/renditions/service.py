"""The rendition use case: serve the stored rendition, else render it once and store it.

Where a rendition comes from, fastest first: this process' memory of recent ones
(memory.py), MinIO, a render already under way here, a render another replica holds the
Redis lock for (wait for its object), a render of our own. Once per cache key: concurrent
requests in this process share one render task (a client that disconnects does not abort
it); the answer goes out as soon as the image exists and the task stores it afterwards.
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
from ..storage import ObjectNotFound, Storage, original_key, renditions_prefix
from .locks import RenditionLocks
from .memory import RecentCache
from .options import RenditionSpec

log = logging.getLogger(__name__)
# Longest a rendition is served from a replica's memory (memory.py: a job deleted through
# another replica stops being served from here within this time).
MEMORY_TTL_SECONDS = 60.0
# How often a replica waiting for another one's render looks for the stored object.
_POLL_SECONDS = 0.1


class RenditionNotFound(Exception):
    """No such job, or its original is gone."""


@dataclass(frozen=True)
class Rendition:
    data: bytes = field(repr=False)
    content_type: str
    sha256: str
    # rendered: by this request; coalesced: by a concurrent one; stored: read from storage;
    # cached: from this process' memory of recent renditions (memory.py).
    outcome: Literal["rendered", "coalesced", "stored", "cached"]

    @property
    def size(self) -> int:
        return len(self.data)


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
        self._renderer: Renderer | None = None  # started with the API (start), if on
        # A render that waits longer than a dependency call for a free render process is
        # answered 503 (back-pressure), not queued without bound.
        self._render_calls = BlockingCalls(
            "renderer", settings.rendition_processes, settings.dependency_timeout_seconds
        )
        # Renders under way in this process, answered as soon as the image exists; the
        # tasks that store them afterwards.
        self._inflight: dict[str, asyncio.Future[Rendition]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._recent: RecentCache[Rendition] = RecentCache(
            settings.rendition_memory_cache_mib * 2**20, MEMORY_TTL_SECONDS
        )
        # Longest a render may hold the lock: its time limit, the kill grace and slack.
        self._lock_seconds = settings.job_timeout_seconds + settings.render_kill_grace_seconds + 5

    def start(self) -> None:
        """Start the render processes now (they take a moment), if renditions are on."""
        if self._settings.rendition_pairs and self._renderer is None:
            self._renderer = build_renderer(
                self._settings, processes=self._settings.rendition_processes
            )

    def forget(self, job_id: UUID) -> None:
        """The job is deleted: serve none of its renditions from memory any more."""
        self._recent.forget_prefix(renditions_prefix(job_id))

    async def drain(self, timeout_seconds: float) -> None:
        """Let renditions already served finish being stored (a graceful shutdown)."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout_seconds)

    def close(self) -> None:
        self._render_calls.close()
        if self._renderer is not None:
            self._renderer.close()

    async def get(
        self, job_id: UUID, spec: RenditionSpec, accept: frozenset[OutputFormat]
    ) -> Rendition:
        key = rendition_key(job_id, spec, accept)
        recent = self._recent.get(key)
        if recent is not None:
            return replace(recent, outcome="cached")
        stored = await self._stored(key)
        if stored is not None:
            self._recent.put(key, stored)
            return stored
        pending = self._inflight.get(key)
        if pending is not None:
            return replace(await asyncio.shield(pending), outcome="coalesced")
        pending = asyncio.get_running_loop().create_future()
        self._inflight[key] = pending
        task = asyncio.create_task(self._render_once(job_id, spec, accept, key, pending))
        self._background.add(task)  # (a task nobody references may be collected)
        task.add_done_callback(self._background.discard)
        return await asyncio.shield(pending)

    async def _stored(self, key: str) -> Rendition | None:
        try:
            found = await self._storage.get_described(self._storage.thumbnails, key)
        except ObjectNotFound:
            return None
        digest = found.metadata.get("sha256") or hashlib.sha256(found.data).hexdigest()
        return Rendition(found.data, found.content_type, digest, "stored")

    async def _render_once(
        self,
        job_id: UUID,
        spec: RenditionSpec,
        accept: frozenset[OutputFormat],
        key: str,
        pending: asyncio.Future[Rendition],
    ) -> None:
        """Answer `pending` as soon as the rendition exists, then store it (the lock is held
        until then, so other replicas find the object when it is released)."""
        token: str | None = ""
        try:
            try:
                token = await self._locks.acquire(key, self._lock_seconds)
            except DependencyUnavailable as exc:  # render anyway: once per replica
                log.warning("rendition lock unavailable, rendering without it: %s", exc)
            if token is None:
                rendered_elsewhere = await self._wait_for_other_replica(key)
                if rendered_elsewhere is not None:
                    self._recent.put(key, rendered_elsewhere)
                    pending.set_result(replace(rendered_elsewhere, outcome="coalesced"))
                    return
            rendition = await self._render_original(job_id, spec, accept)
            self._recent.put(key, rendition)
            pending.set_result(rendition)
            await self._store(job_id, key, rendition)
        except Exception as exc:
            if not pending.done():
                pending.set_exception(exc)
                pending.exception()  # retrieved: every requester may have gone
            else:
                log.warning("rendition %s served but not stored: %s", key, exc)
        finally:
            if not pending.done():  # cancelled (shutdown)
                pending.cancel()
            self._inflight.pop(key, None)
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

    async def _render_original(
        self, job_id: UUID, spec: RenditionSpec, accept: frozenset[OutputFormat]
    ) -> Rendition:
        # The row and the original at once (its key follows from the id): one round trip less.
        job, original = await asyncio.gather(
            self._repository.get(job_id), self._original(original_key(job_id))
        )
        if job is None:
            raise RenditionNotFound(f"no job {job_id}")
        if job.original_key != original_key(job_id):  # (a key from another scheme)
            original = await self._original(job.original_key)
        if original is None:
            raise RenditionNotFound(f"job {job_id} has no stored original")
        thumbnail = await self._render(original, spec, accept)
        digest = hashlib.sha256(thumbnail.data).hexdigest()
        return Rendition(thumbnail.data, thumbnail.content_type, digest, "rendered")

    async def _store(self, job_id: UUID, key: str, rendition: Rendition) -> None:
        await self._storage.put(self._storage.thumbnails, key, rendition.data,
                                rendition.content_type, metadata={"sha256": rendition.sha256})
        if await self._repository.get(job_id) is None:  # deleted while this rendered
            self.forget(job_id)
            await self._storage.delete(self._storage.thumbnails, [key])

    async def _original(self, key: str) -> bytes | None:
        try:
            return await self._storage.get(self._storage.originals, key)
        except ObjectNotFound:
            return None

    async def _render(
        self, original: bytes, spec: RenditionSpec, accept: frozenset[OutputFormat]
    ) -> Thumbnail:
        options = RenderOptions(
            sizes=(SizeSpec("rendition", spec.width, spec.height),),
            fit=spec.fit,
            format=spec.format,
            quality=spec.quality,
            accept=accept,
            placeholder=False,
        )
        settings = self._settings
        self.start()
        renderer = self._renderer
        assert renderer is not None
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
