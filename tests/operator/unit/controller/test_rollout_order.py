"""Operand upgrade order: workers take a new image only after the server rolled out."""

from __future__ import annotations

import copy
from typing import Any

from thumbnail_operator.controller.rollout import gate_worker_rollout, images, rolled_out

Obj = dict[str, Any]


def deployment(name: str, image: str, *, replicas: int = 2, hash_: str = "h1",
               status: Obj | None = None, generation: int = 1) -> Obj:
    return {
        "kind": "Deployment",
        "metadata": {"name": name, "generation": generation},
        "spec": {
            "replicas": replicas,
            "template": {
                "metadata": {"annotations": {"config-hash": hash_}},
                "spec": {
                    "initContainers": [{"name": "migrate", "image": image}],
                    "containers": [{"name": "main", "image": image}],
                },
            },
        },
        "status": status or {},
    }


def done(replicas: int = 2, generation: int = 1) -> Obj:
    return {"observedGeneration": generation, "replicas": replicas,
            "updatedReplicas": replicas, "availableReplicas": replicas}


def scenario(server_observed: Obj | None, worker_new: Obj, worker_old: Obj | None
             ) -> tuple[list[Obj], str | None]:
    server_new = deployment("s-server", "server:2")
    config = {"kind": "ConfigMap", "metadata": {"name": "s-config"}}
    observed: dict[tuple[str, str], Obj] = {}
    if server_observed is not None:
        observed[("Deployment", "s-server")] = server_observed
    if worker_old is not None:
        observed[("Deployment", "s-worker")] = worker_old
    return gate_worker_rollout([config, server_new, worker_new], observed,
                               "s-server", "s-worker")


def test_new_worker_image_waits_while_the_server_rolls_out() -> None:
    old_worker = deployment("s-worker", "worker:1", replicas=3)
    new_worker = deployment("s-worker", "worker:2", replicas=5, hash_="h2")
    rolling = deployment("s-server", "server:2", status={
        "observedGeneration": 1, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2})
    children, reason = scenario(rolling, new_worker, old_worker)
    assert reason is not None and "s-server" in reason
    held = children[2]
    assert images(held) == images(old_worker)  # old template kept ...
    assert held["spec"]["template"] == old_worker["spec"]["template"]
    assert held["spec"]["replicas"] == 5  # ... but scaling still applies
    assert children[:2] == scenario(rolling, new_worker, old_worker)[0][:2]


def test_workers_roll_once_the_server_has_rolled_out() -> None:
    old_worker = deployment("s-worker", "worker:1")
    new_worker = deployment("s-worker", "worker:2")
    finished = deployment("s-server", "server:2", status=done())
    children, reason = scenario(finished, new_worker, old_worker)
    assert reason is None and children[2] is new_worker


def test_server_still_on_the_old_image_holds_the_workers() -> None:
    old_worker = deployment("s-worker", "worker:1")
    new_worker = deployment("s-worker", "worker:2")
    old_server = deployment("s-server", "server:1", status=done())
    _, reason = scenario(old_server, new_worker, old_worker)
    assert reason is not None


def test_changes_without_a_new_worker_image_are_not_held() -> None:
    old_worker = deployment("s-worker", "worker:1", hash_="h1")
    new_config = deployment("s-worker", "worker:1", hash_="h2")
    rolling = deployment("s-server", "server:2", status={"observedGeneration": 0})
    children, reason = scenario(rolling, new_config, old_worker)
    assert reason is None and children[2] is new_config


def test_first_install_is_not_held() -> None:
    worker = deployment("s-worker", "worker:2")
    children, reason = scenario(None, worker, None)
    assert reason is None and children[2] is worker


def test_rolled_out_requires_status_to_catch_up() -> None:
    desired = deployment("s-server", "server:2")
    assert rolled_out(desired, deployment("s-server", "server:2", status=done()))
    stale = deployment("s-server", "server:2", generation=2, status=done(generation=1))
    assert not rolled_out(desired, stale)
    leftovers = copy.deepcopy(done())
    leftovers["replicas"] = 3  # an old pod still running next to two new ones
    assert not rolled_out(desired, deployment("s-server", "server:2", status=leftovers))
    assert rolled_out(desired, deployment("s-server", "server:2", replicas=0, status={
        "observedGeneration": 1}))
    assert not rolled_out(desired, None)
