"""An in-memory stand-in for KubeClient: enough API semantics to unit-test a reconcile pass."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from typing import Any

from thumbnail_operator.kube import ApiError, Kind, kind_of

Obj = dict[str, Any]


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.writes: list[tuple[str, str, str]] = []  # (verb, kind, name)
        self.events: list[Obj] = []
        self.gets: list[tuple[str, str]] = []  # (kind, name) of every GET by name
        self._versions = itertools.count(1)

    def put(self, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        meta["resourceVersion"] = str(next(self._versions))
        meta.setdefault("uid", f"uid-{meta['name']}")
        meta.setdefault("generation", 1)
        self.objects[(obj["kind"], meta["namespace"], meta["name"])] = obj
        return copy.deepcopy(obj)

    def get(self, kind: Kind, namespace: str, name: str) -> Obj | None:
        self.gets.append((kind.kind, name))
        return self._get(kind, namespace, name)

    def _get(self, kind: Kind, namespace: str, name: str) -> Obj | None:
        found = self.objects.get((kind.kind, namespace, name))
        return copy.deepcopy(found) if found else None

    def list(
        self, kind: Kind, namespace: str, labels: dict[str, str],
        fields: dict[str, str] | None = None,
    ) -> list[Obj]:
        def field(obj: Obj, path: str) -> Any:
            for part in path.split("."):
                obj = obj.get(part, {}) if isinstance(obj, dict) else {}
            return obj

        return [
            copy.deepcopy(obj) for (k, ns, _), obj in self.objects.items()
            if k == kind.kind and ns == namespace
            and all(obj["metadata"].get("labels", {}).get(a) == b for a, b in labels.items())
            and all(field(obj, a) == b for a, b in (fields or {}).items())
        ]

    def json_patch(self, obj: Obj, operations: Sequence[Obj]) -> Obj:
        """`test` and `remove` operations, as the reconciler sends them."""
        self.writes.append(("json-patch", obj["kind"], obj["metadata"]["name"]))
        key = (obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])
        target = copy.deepcopy(self.objects[key])
        for operation in operations:
            *parents, last = [
                p.replace("~1", "/").replace("~0", "~") for p in operation["path"].split("/")[1:]
            ]
            node: Any = target
            for part in parents:
                node = node[int(part)] if isinstance(node, list) else node[part]
            index: Any = int(last) if isinstance(node, list) else last
            if operation["op"] == "test" and node[index] != operation["value"]:
                raise ApiError(422, f"test failed at {operation['path']}")
            if operation["op"] == "remove":
                del node[index]
        return self.put(target)

    def log_tail(self, namespace: str, pod: str, container: str, lines: int = 20) -> str:
        return str(self.objects.get(("Pod", namespace, pod), {}).get("log", ""))

    def apply(self, obj: Obj) -> tuple[Obj, bool]:
        self.writes.append(("apply", obj["kind"], obj["metadata"]["name"]))
        current = self._get(kind_of(obj), obj["metadata"]["namespace"], obj["metadata"]["name"])
        merged = _merge(current or {}, obj)
        return self.put(merged), current is None

    def create(self, obj: Obj) -> Obj:
        key = (obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])
        if key in self.objects:
            raise ApiError(409, "already exists")
        self.writes.append(("create", obj["kind"], obj["metadata"]["name"]))
        return self.put(obj)

    def delete(self, kind: Kind, namespace: str, name: str) -> None:
        self.writes.append(("delete", kind.kind, name))
        self.objects.pop((kind.kind, namespace, name), None)

    def patch_status(self, kind: Kind, namespace: str, name: str, status: Obj) -> Obj:
        self.writes.append(("status", kind.kind, name))
        obj = self.objects[(kind.kind, namespace, name)]
        obj["status"] = merge_patch(obj.get("status", {}), status)
        return self.put(obj)

    def request(self, method: str, path: str, **kwargs: Any) -> Obj:
        assert method == "POST" and path.endswith("/events"), (method, path)
        self.events.append(kwargs["body"])
        return {}


def _merge(current: Obj, applied: Obj) -> Obj:
    result = copy.deepcopy(current)
    for key, value in applied.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def merge_patch(current: Any, patch: Any) -> Any:
    """RFC 7386, as the API server applies `application/merge-patch+json`: null removes."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(current) if isinstance(current, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
