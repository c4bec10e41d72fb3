"""Worker autoscaling on the real node: fixed workers, an item-count rule like KEDA's, and the
operator's cost-aware autoscaler, on the same mixed stream of jobs (docs/bench/autoscaling.md).

    python -m bench.autoscaling [--jobs 300] [--seconds 120] [--max-workers 4] [--target 15]
                                [--delay 30] [--list-length 5] [--quick]

The documented sample runs on the substrate's real node (operator as a pod), one policy at a
time in a fresh namespace, each fed the same seeded schedule: `--jobs` submissions spread at
random over `--seconds`, 80 % a 1 MP JPEG to one 128 px JPEG, 20 % a 12 MP JPEG to three AVIFs
(128, 512, 1024 px) - the second costs about a hundred times the first.

- fixed: `workers.replicas = --max-workers` for the whole run (the baseline).
- items: KEDA's Redis-list rule, driven from here with `kubectl scale`: every 5 s,
  ceil(queued jobs / --list-length) workers (0 when none is queued), at most --max-workers,
  shrinking only after --delay (the same damper as the operator's, so only the rule differs).
- cost: `workers.autoscaling {0, --max-workers, --target, --delay}`, the operator's.

Per policy: time to drain (first submission to last job finished), queue wait per job
(`started_at - created_at`, PostgreSQL's clock) p50/p95/max, and worker pod-seconds: worker
pods in existence (Pending or Running, terminating ones too), sampled every second, over the
same window for every policy: from the first submission until the drain plus --delay (what a
scale-down cannot avoid). Every loop is bounded (--jobs, --timeout for any wait).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pyvips
import yaml

from bench.common import markdown_table, percentile, progress, write_results
from bench.kube_helpers import tns_ready
from bench.real_node import API_PORT, CONSOLE_PORT, INSTANCE, TNS_API, Node, credentials
from thumbnail_operator.controller.autoscaling import Damper
from thumbnail_substrate.deploy import SAMPLE, install_operator, with_images
from thumbnail_substrate.images import local_images
from thumbnail_substrate.node import RealCluster
from thumbnail_substrate.testing import load_documents

Obj = dict[str, Any]
POLICIES = ("fixed", "items", "cost")
CONTROL_SECONDS = 5.0  # the item-count rule's polling interval (the operator's probe: 5 s)
SEED = 15


@dataclass(frozen=True)
class Kind:
    """One kind of job in the mix."""

    name: str
    width: int
    height: int
    sizes: str
    format: str


SMALL = Kind("small JPEG", 1200, 800, "small", "jpeg")
LARGE = Kind("large AVIF", 4000, 3000, "small,medium,large", "avif")
LARGE_SHARE = 0.2


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.autoscaling", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--jobs", type=int, default=None, help="submissions per policy (300)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="spread the submissions over this many seconds (120)")
    parser.add_argument("--max-workers", type=int, default=4)
    parser.add_argument("--target", type=int, default=15, help="targetQueueSeconds (cost)")
    parser.add_argument("--delay", type=int, default=30,
                        help="scale-down delay of both autoscalers (seconds)")
    parser.add_argument("--list-length", type=int, default=5,
                        help="queued jobs per worker of the item-count rule (KEDA's default)")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="upper bound of any one wait (Ready, drain, scale-down)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 40 jobs over 20 s")
    args = parser.parse_args(argv)
    args.jobs = args.jobs or (40 if args.quick else 300)
    args.seconds = args.seconds or (20.0 if args.quick else 120.0)
    args.policy_list = [p for p in str(args.policies).split(",") if p]
    unknown = set(args.policy_list) - set(POLICIES)
    if unknown:
        parser.error(f"unknown policies {sorted(unknown)}; choose from {POLICIES}")
    return args


# -- pure parts (tests/bench/test_autoscaling.py) ---------------------------------------------


def schedule(jobs: int, seconds: float, large_share: float, seed: int = SEED) -> list[
        tuple[float, Kind]]:
    """When each job is submitted (seconds after the start) and its kind; the same for every
    policy. Exactly round(jobs x large_share) large ones, at random places."""
    rng = random.Random(seed)
    large = round(jobs * large_share)
    kinds = [LARGE] * large + [SMALL] * (jobs - large)
    rng.shuffle(kinds)
    offsets = sorted(rng.uniform(0, seconds) for _ in range(jobs))
    return list(zip(offsets, kinds, strict=True))


def item_count_workers(queued: int, list_length: int, max_workers: int) -> int:
    """KEDA's Redis-list scaler: ceil(list length / listLength), none for an empty list."""
    return min(math.ceil(queued / list_length), max_workers) if queued > 0 else 0


def pod_seconds(samples: Sequence[tuple[float, int]], start: float, end: float) -> float:
    """The integral of a step function (time, pods), each value holding until the next
    sample, over [start, end]."""
    total = 0.0
    for (t, pods), (t_next, _) in zip(samples, [*samples[1:], (end, 0)], strict=True):
        lo, hi = max(t, start), min(t_next, end)
        if hi > lo:
            total += pods * (hi - lo)
    return total


def waits(jobs: Sequence[Obj]) -> list[float]:
    """Seconds each job waited for its first claim (PostgreSQL's clock for both times)."""
    return [(_time(j["started_at"]) - _time(j["created_at"])) for j in jobs if j["started_at"]]


def _time(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


# -- one policy on the node --------------------------------------------------------------------


def image_for(kind: Kind) -> bytes:
    base = pyvips.Image.xyz(kind.width, kind.height).cast("uchar")
    return bytes(base.bandjoin(base[0]).jpegsave_buffer(Q=90))


def sample_for(policy: str, body: Obj, args: argparse.Namespace) -> Obj:
    spec: Obj = json.loads(json.dumps(body))
    workers = spec["spec"]["workers"]
    if policy == "fixed":
        workers["replicas"] = args.max_workers
    elif policy == "items":
        workers["replicas"] = 0  # this process scales them
    else:
        workers["autoscaling"] = {"minReplicas": 0, "maxReplicas": args.max_workers,
                                  "targetQueueSeconds": args.target,
                                  "scaleDownDelaySeconds": args.delay}
    return spec


class Sampler(threading.Thread):
    """Every second: the worker pods in existence (wall time, count)."""

    def __init__(self, node: Node, namespace: str, name: str) -> None:
        super().__init__(daemon=True)
        self.node, self.namespace, self.selector = node, namespace, f"{INSTANCE}={name}"
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def pods(self) -> int:
        pods = self.node.pods(self.namespace, f"{self.selector},app.kubernetes.io/component"
                                              "=worker")
        return sum(1 for p in pods if p.get("status", {}).get("phase") in ("Pending", "Running"))

    def run(self) -> None:
        while not self.stop.wait(1.0):
            with contextlib.suppress(Exception):
                self.samples.append((time.time(), self.pods()))


class ItemCountScaler(threading.Thread):
    """The item-count rule, applied with `kubectl scale` as KEDA's HPA would."""

    def __init__(self, node: Node, namespace: str, name: str, http: httpx.Client,
                 args: argparse.Namespace) -> None:
        super().__init__(daemon=True)
        self.node, self.namespace, self.name, self.http, self.args = (
            node, namespace, name, http, args)
        self.damper = Damper()
        self.current = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(CONTROL_SECONDS):
            try:
                queued = int(self.http.get("/healthz/detailed").json()["workers"]["queued_jobs"])
            except (httpx.HTTPError, KeyError, TypeError, ValueError):
                continue  # hold, as KEDA does on a failed poll
            wanted = item_count_workers(queued, self.args.list_length, self.args.max_workers)
            settled = self.damper.settle((self.namespace, self.name), wanted,
                                         running=self.current, now=time.monotonic(),
                                         delay=self.args.delay)
            if settled.replicas != self.current:
                self.node.kubectl("-n", self.namespace, "scale",
                                  f"thumbnailservice/{self.name}",
                                  f"--replicas={settled.replicas}")
                self.current = settled.replicas


def run_policy(node: Node, policy: str, body: Obj, args: argparse.Namespace,
               plan: list[tuple[float, Kind]], data: dict[str, bytes]) -> dict[str, Any]:
    namespace, name = f"autoscale-{policy}", body["metadata"]["name"]
    node.fresh_namespace(namespace)
    path = f"{TNS_API}/namespaces/{namespace}/thumbnailservices/{name}"
    node.kubectl("apply", "-n", namespace, "-f", "-",
                 stdin=yaml.safe_dump(sample_for(policy, body, args)))
    node.until(lambda: tns_ready(node.get(path) or {}), f"{namespace}/{name} Ready")
    key = credentials(node, namespace, name)["THUMBNAIL_API_KEYS"].split(",")[0].strip()
    sampler = Sampler(node, namespace, name)
    if policy != "fixed":  # both autoscalers start from zero workers
        node.until(lambda: sampler.pods() == 0, f"{namespace}: no worker pod", interval=1)
    http = httpx.Client(base_url=f"{node.cluster.node_port_url(API_PORT)}",
                        headers={"X-API-Key": key}, timeout=60)
    scaler = ItemCountScaler(node, namespace, name, http, args) if policy == "items" else None
    sampler.start()
    if scaler is not None:
        scaler.start()
    ids: list[str] = []
    started = time.time()
    t0 = time.monotonic()
    try:
        for offset, kind in plan:
            time.sleep(max(0.0, t0 + offset - time.monotonic()))
            response = http.post("/v1/jobs", files={"file": ("in.jpg", data[kind.name])},
                                 data={"sizes": kind.sizes, "format": kind.format})
            response.raise_for_status()
            ids.append(response.json()["id"])
        progress(f"{policy}: {len(ids)} jobs submitted in {time.monotonic() - t0:.0f}s")

        def pending() -> int:
            demand = http.get("/healthz/detailed").json()["workers"]["demand"]
            return sum(int(f["pending_jobs"]) for f in demand["formats"])

        node.until(lambda: pending() == 0, f"{policy}: every job finished", interval=1)
        jobs = [http.get(f"/v1/jobs/{job_id}").json() for job_id in ids]
        drained_at = max(_time(j["finished_at"]) for j in jobs)
        window_end = drained_at + args.delay
        time.sleep(max(0.0, window_end + 2 - time.time()))
        if policy != "fixed":
            node.until(lambda: sampler.pods() == 0, f"{policy}: back to zero workers",
                       interval=1)
        zero_at = time.time()
    finally:
        sampler.stop.set()
        if scaler is not None:
            scaler.stop.set()
        sampler.join(5)
        http.close()
    status = (node.get(path) or {}).get("status", {})
    node.delete_namespace(namespace)
    queue = waits(jobs)
    return {
        "policy": policy,
        "jobs": len(jobs),
        "succeeded": sum(1 for j in jobs if j["status"] == "succeeded"),
        "drain s": round(drained_at - started, 1),
        "wait p50 s": round(percentile(queue, 50), 1),
        "wait p95 s": round(percentile(queue, 95), 1),
        "wait max s": round(max(queue), 1),
        "pod-seconds": round(pod_seconds(sampler.samples, started, window_end)),
        "peak pods": max((n for _, n in sampler.samples), default=0),
        "to zero s": None if policy == "fixed" else round(zero_at - drained_at, 1),
        "samples": sampler.samples,
        "autoscaling_status": status.get("autoscaling"),
    }


def main() -> None:
    args = parse_args()
    begun = time.monotonic()
    images = local_images()
    refs = {component: image.ref for component, image in images.items()}
    body = with_images(load_documents(SAMPLE)[0], refs)
    plan = schedule(args.jobs, args.seconds, LARGE_SHARE)
    data = {kind.name: image_for(kind) for kind in (SMALL, LARGE)}
    progress(f"{args.jobs} jobs over {args.seconds:.0f}s ({sum(k is LARGE for _, k in plan)} "
             f"large); policies {args.policy_list}; max {args.max_workers} workers, target "
             f"{args.target}s, delay {args.delay}s, list length {args.list_length}")
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-autoscaling-") as tmp:
        progress("starting the real node (waits if another one runs on this machine)")
        with contextlib.redirect_stdout(sys.stderr), RealCluster(
            images=images, node_ports=(API_PORT, CONSOLE_PORT)
        ) as cluster:
            node = Node(cluster, args)
            install_operator(cluster.kubeconfig, refs["operator"], Path(tmp) / "overlay",
                             timeout=args.timeout)
            for policy in args.policy_list:
                progress(f"== {policy}")
                result = run_policy(node, policy, body, args, plan, data)
                progress(f"{policy}: " + ", ".join(
                    f"{k} {v}" for k, v in result.items() if k not in ("samples", "policy",
                                                                       "autoscaling_status")))
                results.append(result)
    columns = ["policy", "jobs", "succeeded", "drain s", "wait p50 s", "wait p95 s",
               "wait max s", "pod-seconds", "peak pods", "to zero s"]
    baseline = next((r for r in results if r["policy"] == "items"), None)
    for result in results:
        result["pod-seconds vs items"] = (round(result["pod-seconds"] / baseline["pod-seconds"],
                                                2) if baseline and baseline["pod-seconds"]
                                          else None)
    print(f"\n{args.jobs} jobs over {args.seconds:.0f} s, {LARGE_SHARE:.0%} large; max "
          f"{args.max_workers} workers; targetQueueSeconds {args.target}; delay {args.delay} s\n")
    print(markdown_table(results, [*columns, "pod-seconds vs items"]))
    wall = round(time.monotonic() - begun, 1)
    progress(f"done in {wall:.0f}s")
    write_results("autoscaling", [{k: r[k] for k in [*columns, "pod-seconds vs items"]}
                                  for r in results],
                  wall_seconds=wall, samples={r["policy"]: r["samples"] for r in results},
                  autoscaling_status={r["policy"]: r["autoscaling_status"] for r in results},
                  settings={"jobs": args.jobs, "seconds": args.seconds,
                            "max_workers": args.max_workers, "target": args.target,
                            "delay": args.delay, "list_length": args.list_length,
                            "large_share": LARGE_SHARE, "seed": SEED})


if __name__ == "__main__":
    main()
