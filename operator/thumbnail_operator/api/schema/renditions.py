"""OpenAPI schemas of `spec.thumbnails.renditions` and `.webhooks` (docs/api.md,
"Renditions" and "Completion webhooks"), the same in both versions."""

from __future__ import annotations

from thumbnail_operator.api.schema.openapi import array, boolean, integer, obj, rule, string
from thumbnail_operator.api.v1 import DEFAULTS

_D = DEFAULTS.thumbnails.renditions

RENDITIONS = obj(
    "Signed renditions of stored originals (GET /r/SIGNATURE/OPTIONS/JOB_ID); the signing "
    "pairs are generated into the credentials Secret.",
    {
        "enabled": boolean("Serve renditions.",
                           default=_D.enabled),
        "presetsOnly": boolean("Only preset:NAME sizes.", default=_D.presets_only),
        "cacheMaxAgeSeconds": integer("Cache-Control max-age.",
                                      default=_D.cache_max_age_seconds,
                                      minimum=0, maximum=10 * 31_536_000),
        "processes": integer("Render processes per API server pod.", default=_D.processes,
                             minimum=1, maximum=16),
    },
    default={},
)

_W = DEFAULTS.thumbnails.webhooks

WEBHOOKS = obj(
    "Completion webhooks (callback_url), signed with a secret generated into the "
    "credentials Secret.",
    {
        "enabled": boolean("Accept callback_url.",
                           default=_W.enabled),
        "allowedNetworks": array(
            "Non-public networks webhooks may reach, e.g. 10.0.0.0/8.",
            string("CIDR.", max_length=64,
                   rules=[rule("isCIDR(self)", "allowedNetworks: not a CIDR")]),
            max_items=32, default=list(_W.allowed_networks), list_type="set"),
        "maxAttempts": integer("Delivery attempts.", default=_W.max_attempts,
                               minimum=1, maximum=100),
    },
    default={},
)
