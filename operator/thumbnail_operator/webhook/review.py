"""The ConversionReview (apiextensions.k8s.io/v1) handler: a pure function, dict in, dict out.

The API server sends `request.uid`, `request.desiredAPIVersion` and `request.objects`; it
expects the uid echoed, the converted objects in the same order, and `result.status`
Success or Failure with a message. A failure fails the whole API request (the read or write
of the resource), so the message names the object and says what is wrong with it.
"""

from __future__ import annotations

from typing import Any

from thumbnail_operator.api.conversion.core import API_VERSIONS, convert
from thumbnail_operator.api.conversion.mapping import ConversionError

REVIEW_API_VERSION = "apiextensions.k8s.io/v1"
Obj = dict[str, Any]


def _name(obj: Any) -> str:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return "<unnamed>"
    name = str(meta.get("name") or meta.get("generateName") or "<unnamed>")
    namespace = meta.get("namespace")
    return f"{namespace}/{name}" if namespace else name


def _response(review: Obj, uid: str, converted: list[Obj], error: str | None) -> Obj:
    result: Obj = {"status": "Success"} if error is None else {
        "status": "Failure",
        "message": error,
        "reason": "BadRequest",
    }
    return {
        "apiVersion": review.get("apiVersion") or REVIEW_API_VERSION,
        "kind": "ConversionReview",
        "response": {"uid": uid, "convertedObjects": converted, "result": result},
    }


def review(document: Any) -> Obj:
    """Answer one ConversionReview; never raises (every problem becomes a Failure)."""
    if not isinstance(document, dict):
        return _response({}, "", [], "expected a ConversionReview object")
    request = document.get("request")
    if not isinstance(request, dict):
        return _response(document, "", [], "ConversionReview has no request")
    uid = str(request.get("uid") or "")
    if document.get("kind") != "ConversionReview":
        return _response(document, uid, [], f"expected kind ConversionReview, got "
                         f"{document.get('kind')!r}")
    desired = request.get("desiredAPIVersion")
    if desired not in API_VERSIONS:
        return _response(document, uid, [], f"cannot convert to {desired!r}; this webhook "
                         f"serves {', '.join(API_VERSIONS)}")
    objects = request.get("objects") or []
    if not isinstance(objects, list):
        return _response(document, uid, [], "request.objects must be a list")
    converted: list[Obj] = []
    for obj in objects:
        try:
            converted.append(convert(obj, str(desired)))
        except ConversionError as err:
            return _response(document, uid, [], f"converting {_name(obj)} to {desired}: {err}")
        except Exception as err:  # a bug must still produce an answer the API server shows
            return _response(document, uid, [], f"converting {_name(obj)} to {desired}: "
                             f"internal error {type(err).__name__}: {err}")
    return _response(document, uid, converted, None)
