"""Where every v1alpha1 field lives in v1: one table, read in both directions.

Each `Move` relocates one subtree (present in the source) to its place in the other version,
optionally reshaping it. Subtrees not named here are either containers of moved subtrees
(`intermediates`) or unknown to this release; the engine keeps the latter in an annotation.

A transform may leave a hint for the way back (e.g. the order of the v1 preset list, which
a v1alpha1 map cannot hold); hints are advisory and are applied only where they still fit
the object, because the object may have been edited in the other version in between.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from thumbnail_operator.api.conversion.paths import Path
from thumbnail_operator.api.v1 import Mode

MANAGED, EXTERNAL = Mode.MANAGED.value, Mode.EXTERNAL.value


class ConversionError(ValueError):
    """The object cannot be converted (it does not have the shape its version promises)."""


Hint = dict[str, Any]
# (value, hint) -> value; a backward transform may write into `hint`, a forward one reads it.
Transform = Callable[[Any, Hint], Any]


def _same(value: Any, _hint: Hint) -> Any:
    return value


@dataclass(frozen=True)
class Move:
    alpha: Path
    v1: Path
    to_v1: Transform = _same
    to_alpha: Transform = _same

    @property
    def identity(self) -> bool:
        return self.to_v1 is _same and self.to_alpha is _same


def _p(dotted: str) -> Path:
    return tuple(dotted.split("."))


# -- transforms ----------------------------------------------------------------------------


def enabled_to_mode(value: Any, _hint: Hint) -> str:
    if not isinstance(value, bool):
        raise ConversionError(f"`enabled` must be a boolean, got {value!r}")
    return MANAGED if value else EXTERNAL


def mode_to_enabled(value: Any, _hint: Hint) -> bool:
    if value == MANAGED:
        return True
    if value == EXTERNAL:
        return False
    raise ConversionError(f"`mode` must be {MANAGED} or {EXTERNAL}, got {value!r}")


def pull_secrets_to_v1(value: Any, _hint: Hint) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ConversionError(f"images.pullSecrets must be a list of names, got {value!r}")
    return [{"name": name} for name in value]


def pull_secrets_to_alpha(value: Any, _hint: Hint) -> list[str]:
    if not isinstance(value, list) or not all(
        isinstance(ref, dict) and set(ref) == {"name"} and isinstance(ref["name"], str)
        for ref in value
    ):
        raise ConversionError(f"imagePullSecrets must be a list of {{name: ...}}, got {value!r}")
    return [ref["name"] for ref in value]


def _canonical_order(sizes: dict[str, Any]) -> list[str]:
    """Smallest first (area, then width), ties by name: the order of the default presets."""

    def key(name: str) -> tuple[int, int, str]:
        size = sizes[name]
        width, height = size.get("width"), size.get("height")
        w = width if isinstance(width, int) else 0
        h = height if isinstance(height, int) else 0
        return (w * h, w, name)

    return sorted(sizes, key=key)


def presets_to_v1(value: Any, hint: Hint) -> list[dict[str, Any]]:
    """Map -> list. Order: the hinted v1 order for names still present, then canonical."""
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ConversionError(f"thumbnails.presets must be a map of sizes, got {value!r}")
    if any("name" in size for size in value.values()):
        raise ConversionError("a v1alpha1 preset size cannot have a `name` field")
    hinted = hint.get("order")
    order = [n for n in hinted if n in value] if isinstance(hinted, list) else []
    order = list(dict.fromkeys(order))  # a hand-edited hint may repeat a name
    order += [name for name in _canonical_order(value) if name not in order]
    return [{"name": name, **value[name]} for name in order]


def presets_to_alpha(value: Any, hint: Hint) -> dict[str, Any]:
    if not isinstance(value, list) or not all(
        isinstance(item, dict) and isinstance(item.get("name"), str) for item in value
    ):
        raise ConversionError(f"thumbnails.presets must be a list of named sizes, got {value!r}")
    names = [item["name"] for item in value]
    if len(set(names)) != len(names):
        raise ConversionError(f"thumbnails.presets has duplicate names: {names}")
    sizes = {item["name"]: {k: v for k, v in item.items() if k != "name"} for item in value}
    if names != _canonical_order(sizes):  # a map cannot keep the order; the way back needs it
        hint["order"] = names
    return sizes


# -- the tables ----------------------------------------------------------------------------


def _same_place(*dotted_paths: str) -> list[Move]:
    return [Move(_p(d), _p(d)) for d in dotted_paths]


SPEC_MOVES: tuple[Move, ...] = (
    Move(_p("spec.images.server"), _p("spec.server.image")),
    Move(_p("spec.images.worker"), _p("spec.workers.image")),
    Move(_p("spec.images.postgresql"), _p("spec.postgresql.managed.image")),
    Move(_p("spec.images.redis"), _p("spec.redis.managed.image")),
    Move(_p("spec.images.minio"), _p("spec.objectStorage.managed.image")),
    Move(_p("spec.images.minioClient"), _p("spec.objectStorage.bucketInit.image")),
    Move(_p("spec.images.wait"), _p("spec.dependencyWait.image")),
    Move(_p("spec.images.pullSecrets"), _p("spec.imagePullSecrets"),
         pull_secrets_to_v1, pull_secrets_to_alpha),
    *_same_place("spec.server.replicas", "spec.server.resources", "spec.server.service",
                 "spec.server.console", "spec.server.scheduling"),
    Move(_p("spec.worker.replicas"), _p("spec.workers.replicas")),
    Move(_p("spec.worker.autoscaling"), _p("spec.workers.autoscaling")),
    Move(_p("spec.worker.concurrency"), _p("spec.workers.concurrency")),
    Move(_p("spec.worker.resources"), _p("spec.workers.resources")),
    Move(_p("spec.worker.scheduling"), _p("spec.workers.scheduling")),
    Move(_p("spec.postgresql.enabled"), _p("spec.postgresql.mode"),
         enabled_to_mode, mode_to_enabled),
    *_same_place("spec.postgresql.database", "spec.postgresql.user",
                 "spec.postgresql.external"),
    Move(_p("spec.postgresql.storage"), _p("spec.postgresql.managed.storage")),
    Move(_p("spec.postgresql.resources"), _p("spec.postgresql.managed.resources")),
    Move(_p("spec.postgresql.scheduling"), _p("spec.postgresql.managed.scheduling")),
    Move(_p("spec.redis.enabled"), _p("spec.redis.mode"), enabled_to_mode, mode_to_enabled),
    *_same_place("spec.redis.database", "spec.redis.external"),
    Move(_p("spec.redis.resources"), _p("spec.redis.managed.resources")),
    Move(_p("spec.redis.scheduling"), _p("spec.redis.managed.scheduling")),
    Move(_p("spec.minio.enabled"), _p("spec.objectStorage.mode"),
         enabled_to_mode, mode_to_enabled),
    Move(_p("spec.minio.storage"), _p("spec.objectStorage.managed.storage")),
    Move(_p("spec.minio.resources"), _p("spec.objectStorage.managed.resources")),
    Move(_p("spec.minio.scheduling"), _p("spec.objectStorage.managed.scheduling")),
    Move(_p("spec.minio.console"), _p("spec.objectStorage.managed.console")),
    Move(_p("spec.minio.buckets"), _p("spec.objectStorage.buckets")),
    Move(_p("spec.minio.external"), _p("spec.objectStorage.external")),
    *_same_place("spec.persistence", "spec.deletionProtection", "spec.backup",
                 "spec.bootstrap", "spec.networkPolicy", "spec.monitoring"),
    Move(_p("spec.thumbnails.presets"), _p("spec.thumbnails.presets"),
         presets_to_v1, presets_to_alpha),
    *_same_place("spec.thumbnails.limits", "spec.thumbnails.allowedFormats",
                 "spec.thumbnails.authEnabled", "spec.thumbnails.logLevel",
                 "spec.thumbnails.renditions", "spec.thumbnails.webhooks"),
)

STATUS_MOVES: tuple[Move, ...] = (
    *_same_place("status.observedGeneration", "status.conditions", "status.configHash",
                 "status.serverReplicas", "status.workerReplicas", "status.processing",
                 "status.credentials", "status.lastBackup", "status.autoscaling"),
    Move(_p("status.endpoint"), _p("status.endpoints.cluster")),
    Move(_p("status.nodePortEndpoint"), _p("status.endpoints.nodePort")),
    *_same_place(*(f"status.components.{c}"
                   for c in ("server", "workers", "postgresql", "redis", "buckets"))),
    Move(_p("status.components.minio"), _p("status.components.objectStorage")),
)

MOVES: tuple[Move, ...] = (*SPEC_MOVES, *STATUS_MOVES)
