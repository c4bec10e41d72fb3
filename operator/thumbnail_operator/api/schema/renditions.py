"""OpenAPI schema of `spec.thumbnails.renditions` (docs/api.md, "Renditions"), the same in
both versions."""

from __future__ import annotations

from thumbnail_operator.api.schema.openapi import boolean, integer, obj
from thumbnail_operator.api.v1 import DEFAULTS

_D = DEFAULTS.thumbnails.renditions

RENDITIONS = obj(
    "Signed on-the-fly renditions of stored originals (GET /r/SIGNATURE/OPTIONS/JOB_ID): any "
    "size without an API key, rendered once and stored. The signing key/salt pairs are "
    "generated into the credentials Secret (THUMBNAIL_RENDITION_KEYS, _SALTS).",
    {
        "enabled": boolean("Serve renditions (off: every /r/ URL is 404).",
                           default=_D.enabled),
        "presetsOnly": boolean("Only preset sizes (preset:NAME with fit and f): a bounded set "
                               "of renditions per original.", default=_D.presets_only),
        "cacheMaxAgeSeconds": integer("max-age of a rendition's public, immutable "
                                      "Cache-Control.", default=_D.cache_max_age_seconds,
                                      minimum=0, maximum=10 * 31_536_000),
        "processes": integer("Render processes per API server pod (size the server's memory "
                             "for this many renders at once).", default=_D.processes,
                             minimum=1, maximum=16),
    },
    default={},
)
