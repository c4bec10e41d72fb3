"""Operand upgrades in order: the server first, the workers once the server has rolled out.

A new image may come with database migrations. They run in the server pods' `migrate` init
container (thumbnail-migrate: advisory lock, one transaction per migration, so exactly one
pod applies each and the others find nothing to do), before a new server pod can become
ready and take traffic. Workers read and write the same tables, so a new worker image must
not start before the migrations it expects have run: while the server Deployment is still
rolling out a new image, the worker Deployment keeps its current pod template (its other
fields, e.g. replicas, are still applied). The next pass after the server rollout completes
(the Deployment's status change triggers one) rolls the workers.

Changes that do not touch the worker image (configuration, credentials) roll both at once:
they carry no schema change. Pure functions; the reconciler applies the result.
"""

from __future__ import annotations

import copy
from typing import Any

from thumbnail_operator.builders.common import ChildKey

Obj = dict[str, Any]


def images(deployment: Obj | None) -> dict[str, str]:
    """Container name -> image of a Deployment's pod template (init containers included)."""
    if deployment is None:
        return {}
    pod = deployment.get("spec", {}).get("template", {}).get("spec", {})
    found: dict[str, str] = {}
    for group in ("initContainers", "containers"):
        for container in pod.get(group) or []:
            found[f"{group}/{container['name']}"] = str(container.get("image"))
    return found


def rolled_out(desired: Obj, observed: Obj | None) -> bool:
    """The observed Deployment runs `desired`'s images on every replica, all available."""
    if observed is None or images(observed) != images(desired):
        return False
    spec, status = observed.get("spec") or {}, observed.get("status") or {}
    wanted = int(spec.get("replicas", 1))
    generation = int(observed.get("metadata", {}).get("generation", 0))
    return (
        int(status.get("observedGeneration", 0)) >= generation
        and int(status.get("updatedReplicas", 0)) >= wanted
        and int(status.get("availableReplicas", 0)) >= wanted
        and int(status.get("replicas", 0)) <= wanted  # no old pods left
    )


def gate_worker_rollout(
    children: list[Obj], observed: dict[ChildKey, Obj], server: str, worker: str
) -> tuple[list[Obj], str | None]:
    """The children to apply now and, when the worker rollout is held back, why."""
    by_key = {(child["kind"], child["metadata"]["name"]): child for child in children}
    desired_server = by_key.get(("Deployment", server))
    desired_worker = by_key.get(("Deployment", worker))
    current_worker = observed.get(("Deployment", worker))
    if desired_server is None or desired_worker is None or current_worker is None:
        return children, None  # first install (or nothing to order)
    if images(desired_worker) == images(current_worker):
        return children, None  # no new worker image: nothing to wait for
    if rolled_out(desired_server, observed.get(("Deployment", server))):
        return children, None
    held = copy.deepcopy(desired_worker)
    held["spec"]["template"] = copy.deepcopy(current_worker["spec"]["template"])
    reason = (f"new worker image waits for Deployment/{server} to finish rolling out "
              "(database migrations run in its init container)")
    return [held if child is desired_worker else child for child in children], reason
