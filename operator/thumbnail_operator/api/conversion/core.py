"""Pure, lossless conversion of whole ThumbnailService objects between v1alpha1 and v1.

`to_v1` and `to_v1alpha1` take a custom resource (apiVersion, kind, metadata, spec, status)
and return a new one in the other version; the input is never modified. Metadata is kept as
is, except for one annotation per direction that carries what the target version cannot say:

- `thumbnails.platform.dev/v1-extras` on a v1alpha1 object: what its v1 original had that
  v1alpha1 cannot hold (the order of the preset list; empty groups; unknown fields);
- `thumbnails.platform.dev/v1alpha1-extras` on a v1 object: the same for a v1alpha1 original
  (empty groups such as `images: {}`; unknown fields).

Converting back consumes the annotation, so `to_v1alpha1(to_v1(a)) == a` and
`to_v1(to_v1alpha1(b)) == b`. The extras are applied only where they still fit, so an
object edited in the other version in between converts to the edited state, never back to
a stale one. Only the two reserved annotation keys are touched; the API server forbids a
conversion to change any other metadata.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from thumbnail_operator import constants as c
from thumbnail_operator.api.conversion.mapping import MOVES, ConversionError, Hint, Move
from thumbnail_operator.api.conversion.paths import MISSING, Obj, Path, dotted, lookup, put

V1ALPHA1 = c.DEPRECATED_API_VERSION
V1 = c.API_VERSION
API_VERSIONS = (V1ALPHA1, V1)
V1_EXTRAS = f"{c.GROUP}/v1-extras"  # on v1alpha1 objects
V1ALPHA1_EXTRAS = f"{c.GROUP}/v1alpha1-extras"  # on v1 objects
RESERVED_ANNOTATIONS = frozenset({V1_EXTRAS, V1ALPHA1_EXTRAS})

_ENVELOPE = ("apiVersion", "kind", "metadata")
Side = Literal["alpha", "v1"]


@dataclass
class Extras:
    """What the target version cannot hold, kept for the way back (JSON in an annotation)."""

    empty: list[Path] = field(default_factory=list)
    unmapped: list[tuple[Path, Any]] = field(default_factory=list)
    hints: dict[str, Hint] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.empty or self.unmapped or any(self.hints.values()))

    def dumps(self) -> str:
        document: dict[str, Any] = {}
        if self.empty:
            document["empty"] = sorted(list(p) for p in self.empty)
        if self.unmapped:
            document["unmapped"] = [
                {"path": list(p), "value": v} for p, v in sorted(self.unmapped, key=lambda e: e[0])
            ]
        hints = {k: v for k, v in sorted(self.hints.items()) if v}
        if hints:
            document["hints"] = hints
        return json.dumps(document, sort_keys=True, separators=(",", ":"))

    @classmethod
    def loads(cls, text: str | None) -> Extras:
        """Parse an annotation; anything malformed is ignored (it is only a hint)."""
        if not text:
            return cls()
        try:
            document = json.loads(text)
        except ValueError:
            return cls()
        if not isinstance(document, dict):
            return cls()
        extras = cls()
        for path in document.get("empty") or []:
            if _is_path(path):
                extras.empty.append(tuple(path))
        for entry in document.get("unmapped") or []:
            if isinstance(entry, dict) and _is_path(entry.get("path")) and "value" in entry:
                extras.unmapped.append((tuple(entry["path"]), entry["value"]))
        hints = document.get("hints")
        if isinstance(hints, dict):
            extras.hints = {k: v for k, v in hints.items() if isinstance(v, dict)}
        return extras


def _is_path(value: Any) -> bool:
    return (
        isinstance(value, list) and bool(value) and all(isinstance(k, str) for k in value)
    )


def _intermediates(paths: Iterable[Path]) -> frozenset[Path]:
    return frozenset(path[:i] for path in paths for i in range(1, len(path)))


def _source(move: Move, side: Side) -> Path:
    return move.alpha if side == "alpha" else move.v1


def _target(move: Move, side: Side) -> Path:
    return move.v1 if side == "alpha" else move.alpha


def convert_body(
    body: Obj, source: Side, incoming: Extras, moves: tuple[Move, ...] = MOVES
) -> tuple[Obj, Extras]:
    """Move every known subtree of `body` (spec, status, ...) to its place in the other version.

    `incoming` are the extras the object carried for the target version (restored into the
    result where they fit). Returns the result and the extras to keep for the source version.
    """
    sources = {_source(m, source) for m in moves}
    intermediates = _intermediates(sources)
    out: Obj = {}
    outgoing = Extras()
    for move in moves:
        value = lookup(body, _source(move, source))
        if value is MISSING:
            continue
        key = dotted(move.v1)  # hints are keyed by the v1 path, whichever the direction
        if source == "alpha":
            converted = move.to_v1(copy.deepcopy(value), incoming.hints.get(key, {}))
        else:
            hint: Hint = {}
            converted = move.to_alpha(copy.deepcopy(value), hint)
            if hint:
                outgoing.hints[key] = hint
        put(out, _target(move, source), converted)
    _collect_leftovers(body, (), sources, intermediates, outgoing)
    _restore(out, incoming)
    return out, outgoing


def _collect_leftovers(
    node: Obj, path: Path, sources: set[Path], intermediates: frozenset[Path], extras: Extras
) -> None:
    for key, value in node.items():
        here = (*path, key)
        if here in sources:
            continue
        if here in intermediates and isinstance(value, dict):
            if value:
                _collect_leftovers(value, here, sources, intermediates, extras)
            else:
                extras.empty.append(here)
        else:
            extras.unmapped.append((here, copy.deepcopy(value)))


def _restore(out: Obj, extras: Extras) -> None:
    """Put back what only the target version could hold, wherever it is still absent."""
    for path, value in extras.unmapped:
        if lookup(out, path) is MISSING:
            put(out, path, copy.deepcopy(value))
    for path in extras.empty:
        if lookup(out, path) is MISSING:
            put(out, path, {})


def _convert(obj: Obj, source: Side) -> Obj:
    if not isinstance(obj, dict):
        raise ConversionError(f"expected an object, got {type(obj).__name__}")
    source_version, target_version = (V1ALPHA1, V1) if source == "alpha" else (V1, V1ALPHA1)
    incoming_key, outgoing_key = (
        (V1_EXTRAS, V1ALPHA1_EXTRAS) if source == "alpha" else (V1ALPHA1_EXTRAS, V1_EXTRAS)
    )
    api_version = obj.get("apiVersion")
    if api_version == target_version:
        return copy.deepcopy(obj)
    if api_version != source_version:
        raise ConversionError(
            f"cannot convert apiVersion {api_version!r}; expected one of {', '.join(API_VERSIONS)}"
        )
    metadata = copy.deepcopy(obj.get("metadata"))
    if metadata is not None and not isinstance(metadata, dict):
        raise ConversionError("metadata must be an object")
    raw_annotations = (metadata or {}).get("annotations") or {}
    if not isinstance(raw_annotations, dict):
        raise ConversionError("metadata.annotations must be a map")
    annotations: dict[str, Any] = dict(raw_annotations)
    incoming_text = annotations.pop(incoming_key, None)
    annotations.pop(outgoing_key, None)  # not meaningful on this version: stale
    incoming = Extras.loads(incoming_text if isinstance(incoming_text, str) else None)

    body = {k: v for k, v in obj.items() if k not in _ENVELOPE}
    converted, outgoing = convert_body(body, source, incoming)
    if outgoing:
        annotations[outgoing_key] = outgoing.dumps()

    result: Obj = {"apiVersion": target_version}
    if "kind" in obj:
        result["kind"] = obj["kind"]
    if metadata is not None or annotations:
        metadata = metadata if metadata is not None else {}
        if annotations:
            metadata["annotations"] = annotations
        else:
            metadata.pop("annotations", None)
        result["metadata"] = metadata
    result.update(converted)
    return result


def to_v1(obj: Obj) -> Obj:
    """A v1alpha1 ThumbnailService as v1 (a v1 object is returned unchanged)."""
    return _convert(obj, "alpha")


def to_v1alpha1(obj: Obj) -> Obj:
    """A v1 ThumbnailService as v1alpha1 (a v1alpha1 object is returned unchanged)."""
    return _convert(obj, "v1")


def convert(obj: Obj, desired_api_version: str) -> Obj:
    """Convert to `desired_api_version` (either served version of the group)."""
    if desired_api_version == V1:
        return to_v1(obj)
    if desired_api_version == V1ALPHA1:
        return to_v1alpha1(obj)
    raise ConversionError(
        f"cannot convert to {desired_api_version!r}; expected one of {', '.join(API_VERSIONS)}"
    )
