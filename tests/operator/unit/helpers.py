"""Shared inputs for the operator's pure unit tests."""

from __future__ import annotations

from typing import Any

from thumbnail_operator.api.v1 import parse_spec
from thumbnail_operator.builders import DesiredState, Owner, build_desired_state
from thumbnail_operator.builders.credentials import ensure_credentials

OWNER = Owner(name="demo", namespace="media", uid="0000-1111")


def desired(raw_spec: dict[str, Any] | None = None, **kwargs: Any) -> DesiredState:
    spec = parse_spec(raw_spec or {})
    credentials = kwargs.pop("credentials", None) or ensure_credentials(spec, None)
    external = kwargs.pop("external", {})
    return build_desired_state(OWNER, spec, credentials, external)


def by_name(state: DesiredState) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in state.children}


def containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def pod_specs(state: DesiredState) -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]
        for o in state.children if o["kind"] in ("Deployment", "StatefulSet", "Job")
    }
