"""The delete use case, apart from HTTP: a job's objects first, then its row.

A failure part-way leaves the job visible, so the delete can be retried; never an invisible
row-less orphan in storage. Thumbnail keys are deterministic, so this also removes the ones
a worker may be writing right now; renditions are listed (a rendition stored after the
listing is removed by its renderer, which checks the row again: renditions/service.py).
"""

from __future__ import annotations

from .jobs import JobRecord
from .repository import JobRepository
from .storage import Storage, renditions_prefix, thumbnail_key


async def delete_job_and_images(
    job: JobRecord, repository: JobRepository, storage: Storage
) -> None:
    keys = {thumbnail_key(job.id, s.name) for s in job.options.sizes}
    keys |= {t.object_key for t in job.thumbnails}
    keys |= set(await storage.keys_under(storage.thumbnails, renditions_prefix(job.id)))
    await storage.delete(storage.thumbnails, sorted(keys))
    await storage.delete(storage.originals, [job.original_key])
    await repository.delete(job.id)
