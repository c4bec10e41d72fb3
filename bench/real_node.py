"""The documented sample on a real node: apply->Ready on real pods, thumbnails/s through the
NodePort, each against a baseline measured in the same run (docs/bench/real-node.md).

    python -m bench.real_node [--repeats 3] [--workers 1,2] [--jobs 600] [--budget 40] [--quick]

The substrate's `RealCluster` (containerd + runc + kubelet + kube-proxy + CoreDNS in a network
namespace, the host reaching the API server and NodePorts through socat forwards on
127.0.0.1) runs the operator as a pod, installed with `kubectl apply -k` (deploy.py).

1. apply -> Ready, `--repeats` rounds, interleaved: a bare 1-replica Deployment of the local
   `wait` image (`sleep`, exec readiness probe `true` every second) until Available, then the
   documented sample (manifests/samples/thumbnailservice-full.yaml, image fields pointed at
   the local images) until its Ready condition is True for its generation. Each in a fresh
   namespace whose default ServiceAccount exists before the clock starts; each deleted (and
   waited for) before the next, except the last sample, which phase 2 uses. Where the
   sample's time goes: its pods' condition and container timestamps (1 s resolution).
2. Thumbnails/s through NodePort 30000 with N worker pods (`kubectl scale
   thumbnailservice/NAME --replicas=N`): a closed loop keeps `--window` jobs in flight
   (default 4N = 2 x the worker threads, as bench.pipeline), each a POST /v1/jobs of
   bench.pipeline's 2 MP JPEG with the sample's three presets; a watcher polls the pod's
   PostgreSQL (bench.pipeline.Watcher, through a forward to the pod IP) for finished jobs.
   CPU by pod (cgroup cpuacct), by node process and for the whole machine over the window.
3. Baseline: `python -m bench.pipeline --no-peer` (the same stack as processes on loopback,
   same images, jobs, budget and window) after the node has been torn down, its JSON read
   from a temporary BENCH_RESULTS_DIR. Ratio = node jobs/s / loopback jobs/s per N.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.common import markdown_table, progress, summary, write_results
from bench.kube_helpers import deployment_available, tns_ready
from bench.pipeline import drive, make_images
from bench.stack import cpu_seconds
from thumbnail_substrate.deploy import SAMPLE, install_operator, with_images
from thumbnail_substrate.host_state import CGROUP_ROOT
from thumbnail_substrate.images import LocalImage, local_images
from thumbnail_substrate.netns import Forward
from thumbnail_substrate.node import RealCluster
from thumbnail_substrate.testing import kubectl, load_documents, wait_for

Obj = dict[str, Any]
API_PORT, CONSOLE_PORT = 30000, 30001
TNS_API = "/apis/thumbnails.platform.dev/v1"
COMPONENT = "app.kubernetes.io/component"
INSTANCE = "app.kubernetes.io/instance"
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
# The order the sample's components appear in the breakdown table.
COMPONENT_ORDER = ("postgresql", "redis", "minio", "bucket-init", "server", "worker")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.real_node",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repeats", type=int, default=None, help="apply->Ready rounds (3)")
    parser.add_argument("--workers", default=None, help="worker pod counts (default 1,2)")
    parser.add_argument("--jobs", type=int, default=None, help="max measured jobs per N (600)")
    parser.add_argument("--budget", type=float, default=None, help="max seconds per N (40)")
    parser.add_argument("--window", type=int, default=0, help="jobs in flight (default 4N)")
    parser.add_argument("--megapixels", type=float, default=2.0)
    parser.add_argument("--idle-seconds", type=float, default=10.0,
                        help="CPU of the idle node with the sample Ready, before phase 2")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="upper bound of any one wait (Ready, deletion, scale)")
    parser.add_argument("--no-loopback", action="store_true",
                        help="skip the bench.pipeline baseline (ratios left empty)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 repeat, N=1 only, 40 jobs, 10 s")
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    args.repeats = args.repeats or (1 if quick else 3)
    args.workers = args.workers or ("1" if quick else "1,2")
    args.jobs = args.jobs or (40 if quick else 600)
    args.budget = args.budget or (10.0 if quick else 40.0)
    args.counts = [int(w) for w in str(args.workers).split(",")]
    return args


# -- pure helpers (tests/bench/test_real_node.py) ---------------------------------------------


def parse_time(stamp: str | None) -> float | None:
    """An RFC 3339 timestamp of the API (`2026-12-04T03:40:39Z`) as a Unix time."""
    return datetime.fromisoformat(stamp).timestamp() if stamp else None


def pod_timeline(pod: Obj, t0: float) -> dict[str, Any]:
    """Seconds after `t0` (Unix) at which a pod was created, scheduled, done with its init
    containers, had its containers started and became Ready (or its containers finished,
    for a Job's pod); init containers by name (their finish)."""

    def rel(stamp: str | None) -> float | None:
        # Stamps are whole seconds (truncated): one in the second of the apply reads as 0.
        value = parse_time(stamp)
        return None if value is None else max(round(value - t0, 1), 0.0)

    status = pod.get("status") or {}
    conditions = {c["type"]: c for c in status.get("conditions") or []}

    def condition(kind: str) -> float | None:
        found = conditions.get(kind)
        ok = found is not None and found.get("status") == "True"
        return rel(found.get("lastTransitionTime")) if found is not None and ok else None

    def states(key: str) -> list[Obj]:
        return [s.get("state") or {} for s in status.get(key) or []]

    started = [rel((s.get("running") or s.get("terminated") or {}).get("startedAt"))
               for s in states("containerStatuses")]
    finished = [rel((s.get("terminated") or {}).get("finishedAt"))
                for s in states("containerStatuses")]
    inits = {
        s["name"]: rel(((s.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        for s in status.get("initContainerStatuses") or []
    }
    probes = [c["readinessProbe"] for c in (pod.get("spec") or {}).get("containers") or []
              if "readinessProbe" in c]
    return {
        "probe": (f"{probes[0].get('initialDelaySeconds', 0)}/{probes[0].get('periodSeconds', 10)}"
                  if probes else ""),
        "created": rel(pod["metadata"].get("creationTimestamp")),
        "scheduled": condition("PodScheduled"),
        "initialized": condition("Initialized"),
        "started": max((s for s in started if s is not None), default=None),
        "ready": condition("Ready"),
        "finished": max((f for f in finished if f is not None), default=None),
        "init": inits,
    }


def component_of(pod: Obj) -> str:
    labels = pod["metadata"].get("labels") or {}
    if labels.get("app.kubernetes.io/name") == "thumbnail-operator":
        return "operator"
    return str(labels.get(COMPONENT) or f"{pod['metadata']['namespace']}/pod")


def median_timeline(timelines: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Median of each field over the rounds (None where a round lacks it)."""
    rounds = list(timelines)
    out: dict[str, Any] = {}
    for key in ("created", "scheduled", "initialized", "started", "ready", "finished"):
        values = [t[key] for t in rounds if t.get(key) is not None]
        out[key] = round(statistics.median(values), 1) if values else None
    out["probe"] = next((t["probe"] for t in rounds if t.get("probe")), "")
    names = [n for t in rounds for n in t.get("init", {})]
    out["init"] = {
        name: round(statistics.median(v), 1)
        for name in dict.fromkeys(names)
        if (v := [t["init"][name] for t in rounds if t["init"].get(name) is not None])
    }
    return out


# -- cluster access ---------------------------------------------------------------------------


class Node:
    """The benchmark's handle on the real node: GETs through the substrate's HTTP client
    (cheap: no kubectl process per poll), writes through kubectl as a user does."""

    def __init__(self, cluster: RealCluster, args: argparse.Namespace) -> None:
        self.cluster = cluster
        self.args = args
        self.kubeconfig = cluster.kubeconfig

    def get(self, path: str) -> Obj | None:
        try:
            obj: Obj = self.cluster.request("GET", path)
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise
        return obj

    def pods(self, namespace: str | None, selector: str = "") -> list[Obj]:
        where = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
        query = f"?labelSelector={urllib.parse.quote(selector)}" if selector else ""
        listing = self.get(where + query) or {}
        items: list[Obj] = listing.get("items") or []
        return items

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return kubectl(self.kubeconfig, *args, stdin=stdin, timeout=self.args.timeout)

    def until(self, probe: Callable[[], Any], what: str, interval: float = 0.2) -> float:
        """Poll `probe` (bounded by --timeout); the monotonic time it first held."""
        wait_for(probe, timeout=self.args.timeout, what=what, interval=interval,
                 ignore=(urllib.error.URLError, OSError, KeyError))
        return time.monotonic()

    def fresh_namespace(self, name: str) -> None:
        """A namespace with its default ServiceAccount (pods need it: not measured)."""
        self.kubectl("create", "namespace", name)
        self.until(lambda: self.get(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
                   f"{name} default ServiceAccount")

    def delete_namespace(self, name: str) -> float:
        """Delete and wait until the namespace (so every pod, PVC and NodePort) is gone."""
        started = time.monotonic()
        self.kubectl("delete", "namespace", name, "--wait=false")
        self.until(lambda: self.get(f"/api/v1/namespaces/{name}") is None,
                   f"namespace {name} deleted", interval=0.5)
        return time.monotonic() - started


# -- phase 1: apply -> Ready ------------------------------------------------------------------


def bare_deployment(image: str) -> Obj:
    labels = {"app": "bare"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bare", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 1,  # sleep ignores SIGTERM as PID 1
                    "containers": [{
                        "name": "main",
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c", "sleep 3600"],
                        "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
                    }],
                },
            },
        },
    }


def apply_deployment(node: Node, namespace: str, image: str) -> float:
    node.fresh_namespace(namespace)
    started = time.monotonic()
    node.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(bare_deployment(image)))
    ready = node.until(
        lambda: deployment_available(
            node.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/bare") or {}
        ),
        f"Deployment {namespace}/bare Available",
    )
    return ready - started


def apply_sample(node: Node, namespace: str, body: Obj) -> tuple[float, dict[str, Any]]:
    """apply -> Ready of the sample; its pods' timelines by component."""
    node.fresh_namespace(namespace)
    name = body["metadata"]["name"]
    path = f"{TNS_API}/namespaces/{namespace}/thumbnailservices/{name}"
    wall = time.time()
    started = time.monotonic()
    node.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(body))
    ready = node.until(lambda: tns_ready(node.get(path) or {}), f"{namespace}/{name} Ready")
    seconds = ready - started
    by_component: dict[str, list[dict[str, Any]]] = {}
    for pod in node.pods(namespace, f"{INSTANCE}={name}"):
        by_component.setdefault(component_of(pod), []).append(pod_timeline(pod, wall))
    timelines: dict[str, Any] = {}
    for component, pods in by_component.items():
        # Several pods (workers): the last one is what Ready waited for.
        timelines[component] = max(pods, key=lambda t: t["ready"] or t["finished"] or 0)
        timelines[component]["pods"] = len(pods)
    timelines["ThumbnailService"] = {"ready": round(seconds, 1)}
    return seconds, timelines


def phase_ready(node: Node, body: Obj, wait_image: str) -> tuple[str, Obj]:
    """`--repeats` interleaved rounds; returns the namespace of the sample left running."""
    repeats: int = node.args.repeats
    bare: list[float] = []
    sample: list[float] = []
    timelines: list[dict[str, Any]] = []
    deletions: dict[str, list[float]] = {"bare": [], "sample": []}
    namespace = ""
    for i in range(repeats):
        ns = f"bench-bare-{i}"
        bare.append(apply_deployment(node, ns, wait_image))
        progress(f"round {i + 1}/{repeats}: bare Deployment Available in {bare[-1]:.2f}s")
        deletions["bare"].append(node.delete_namespace(ns))
        namespace = f"bench-sample-{i}"
        seconds, timeline = apply_sample(node, namespace, body)
        sample.append(seconds)
        timelines.append(timeline)
        progress(f"round {i + 1}/{repeats}: sample READY True in {seconds:.2f}s "
                 f"(server Ready +{timeline.get('server', {}).get('ready')}s)")
        if i < repeats - 1:
            deletions["sample"].append(node.delete_namespace(namespace))
            progress(f"round {i + 1}/{repeats}: sample deleted, namespace gone in "
                     f"{deletions['sample'][-1]:.1f}s")
    order = (*COMPONENT_ORDER, "ThumbnailService")
    components = sorted({c for t in timelines for c in t},
                        key=lambda c: order.index(c) if c in order else len(order))
    medians = {c: median_timeline(t[c] for t in timelines if c in t) for c in components}
    return namespace, {
        "bare_seconds": bare,
        "sample_seconds": sample,
        "bare": summary(bare),
        "sample": summary(sample),
        "ratio": statistics.median(sample) / statistics.median(bare),
        "timelines": timelines,
        "timeline_medians": medians,
        "deletion_seconds": deletions,
    }


# -- phase 2: throughput through the NodePort -------------------------------------------------


class NodeCpu:
    """CPU seconds over a window: each pod (cgroup cpuacct), each node process tree, this
    process, the whole machine (/proc/stat); CFS throttling of the worker pods."""

    def __init__(self, node: Node, extra_forwards: Sequence[Forward] = ()) -> None:
        self.node = node
        self.cgroup = node.cluster.cgroup_name
        pods = node.pods(None)
        self.pods = {p["metadata"]["uid"]: component_of(p) for p in pods
                     if not p["metadata"].get("deletionTimestamp")}
        self.processes: dict[str, list[int]] = {}
        for proc in [*node.cluster.processes, *extra_forwards]:
            if proc.pid is None:
                continue
            group = ("control plane (etcd, apiserver, controller-manager, scheduler)"
                     if proc.name in CONTROL_PLANE else
                     "host forwards (socat + nsenter per connection)"
                     if proc.name.startswith("forward") else proc.name)
            self.processes.setdefault(group, []).append(proc.pid)
        self._start: dict[str, float] = {}
        self._t0 = 0.0
        self.used: dict[str, float] = {}
        self.wall = 0.0
        self.throttle: dict[str, dict[str, float]] = {}
        self._throttle0: dict[str, tuple[int, int, int]] = {}

    def _pod_dir(self, hierarchy: str, uid: str) -> Path | None:
        base = CGROUP_ROOT / hierarchy / self.cgroup / "kubepods"
        for qos in ("", "burstable/", "besteffort/"):
            candidate = base / f"{qos}pod{uid}"
            if candidate.is_dir():
                return candidate
        return None

    def _read_pods(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for uid, component in self.pods.items():
            directory = self._pod_dir("cpuacct", uid)
            if directory is None:
                continue
            with contextlib.suppress(OSError, ValueError):
                used = int((directory / "cpuacct.usage").read_text()) / 1e9
                key = f"pod: {component}"
                out[key] = out.get(key, 0.0) + used
        return out

    def _read_throttle(self) -> dict[str, tuple[int, int, int]]:
        """CFS periods, throttled periods and throttled ns of each pod (its CPU limit)."""
        out: dict[str, tuple[int, int, int]] = {}
        for uid in self.pods:
            directory = self._pod_dir("cpu", uid)
            if directory is None:
                continue
            with contextlib.suppress(OSError, ValueError, KeyError):
                stat = dict(line.split() for line in
                            (directory / "cpu.stat").read_text().splitlines())
                out[uid] = (int(stat["nr_periods"]), int(stat["nr_throttled"]),
                            int(stat["throttled_time"]))
        return out

    @staticmethod
    def _machine() -> float:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[:7])
        return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")

    def _sample(self) -> dict[str, float]:
        out = self._read_pods()
        for group, pids in self.processes.items():
            out[group] = sum(cpu_seconds(pid) for pid in pids)
        times = os.times()
        out["load generator + watcher (this process)"] = times.user + times.system
        out["machine"] = self._machine()
        return out

    def start(self) -> None:
        self._throttle0 = self._read_throttle()
        self._start = self._sample()
        self._t0 = time.monotonic()

    def stop(self) -> None:
        end = self._sample()
        self.wall = time.monotonic() - self._t0
        self.used = {k: v - self._start.get(k, 0.0) for k, v in end.items()}
        sums: dict[str, list[int]] = {}
        for uid, (p, t, ns) in self._read_throttle().items():
            p0, t0, ns0 = self._throttle0.get(uid, (0, 0, 0))
            acc = sums.setdefault(f"pod: {self.pods[uid]}", [0, 0, 0])
            acc[0], acc[1], acc[2] = acc[0] + p - p0, acc[1] + t - t0, acc[2] + ns - ns0
        self.throttle = {
            key: {"periods": p, "throttled_periods": t,
                  "throttled_share": t / p if p else 0.0, "throttled_s": ns / 1e9}
            for key, (p, t, ns) in sums.items()
        }

    def rows(self, jobs: int) -> list[Obj]:
        machine = self.used.get("machine", 0.0)
        parts = {k: v for k, v in self.used.items() if k != "machine"}
        accounted = sum(parts.values())
        parts["rest of the machine (shims, runc, probes, other users)"] = max(
            machine - accounted, 0.0)
        def throttled(name: str) -> str | None:
            t = self.throttle.get(name)
            if not t or not t["periods"]:
                return None
            return f"{100 * t['throttled_share']:.0f} % ({t['throttled_s']:.1f} s)"

        rows: list[Obj] = [
            {"component": name, "cpu_s": round(used, 2),
             "cores": round(used / self.wall, 2) if self.wall else 0.0,
             "ms/job": round(used / jobs * 1000, 1) if jobs else None,
             "CFS throttled": throttled(name)}
            for name, used in sorted(parts.items(), key=lambda kv: -kv[1])
        ]
        rows.append({"component": "machine (/proc/stat)", "cpu_s": round(machine, 2),
                     "cores": round(machine / self.wall, 2) if self.wall else 0.0,
                     "ms/job": round(machine / jobs * 1000, 1) if jobs else None})
        return rows


def credentials(node: Node, namespace: str, name: str) -> dict[str, str]:
    secret = node.get(f"/api/v1/namespaces/{namespace}/secrets/{name}-credentials") or {}
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def worker_pods(node: Node, namespace: str, name: str) -> list[Obj]:
    live = [p for p in node.pods(namespace, f"{INSTANCE}={name},{COMPONENT}=worker")
            if not p["metadata"].get("deletionTimestamp")]
    return live


def scale_workers(node: Node, namespace: str, name: str, replicas: int) -> list[Obj]:
    node.kubectl("-n", namespace, "scale", f"thumbnailservice/{name}", f"--replicas={replicas}")

    def settled() -> list[Obj] | None:
        every = node.pods(namespace, f"{INSTANCE}={name},{COMPONENT}=worker")
        ready = [p for p in every if not p["metadata"].get("deletionTimestamp") and all(
            s.get("ready") for s in (p.get("status") or {}).get("containerStatuses")
            or [{"ready": False}])]
        return ready if len(every) == len(ready) == replicas else None

    node.until(settled, f"{replicas} ready worker pods, none terminating", interval=0.5)
    path = f"{TNS_API}/namespaces/{namespace}/thumbnailservices/{name}"
    node.until(lambda: tns_ready(node.get(path) or {}), f"{name} Ready at {replicas} workers")
    return worker_pods(node, namespace, name)


RUNTIME_PROBE = """
import os, json
env = {k: v for k, v in os.environ.items()
       if k.startswith(("THUMBNAIL_WORKER", "THUMBNAIL_RENDER", "VIPS_", "OMP_"))}
procs = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            procs.append(open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\\0", b" ")
                         .decode(errors="replace").strip()[:120])
        except OSError:
            pass
print(json.dumps({"env": env, "cpu_count": os.cpu_count(),
                  "processes": sorted(p for p in procs if p)}))
"""


def worker_runtime(node: Node, namespace: str, pod: Obj) -> Obj:
    """What one worker pod really runs with: its concurrency settings, the CPUs it sees,
    its processes (render children included), its CPU limit."""
    name = pod["metadata"]["name"]
    try:
        facts: Obj = json.loads(
            node.kubectl("-n", namespace, "exec", name, "--", "python", "-c", RUNTIME_PROBE))
    except (AssertionError, ValueError) as err:  # KubectlError is an AssertionError
        facts = {"error": str(err)[:300]}
    facts["limits"] = [c.get("resources", {}).get("limits") for c in pod["spec"]["containers"]]
    return facts


def jobs_done_by(node: Node, namespace: str, pods: Sequence[Obj]) -> dict[str, int]:
    """Jobs each worker pod logged as succeeded so far."""
    out: dict[str, int] = {}
    for pod in pods:
        name = pod["metadata"]["name"]
        log = node.kubectl("-n", namespace, "logs", name)
        out[name] = log.count(": succeeded (")
    return out


def phase_throughput(node: Node, namespace: str, body: Obj, images: list[bytes],
                     workdir: Path) -> dict[str, Any]:
    args = node.args
    name = body["metadata"]["name"]
    spec = body["spec"]
    secrets = credentials(node, namespace, name)
    api_key = secrets["THUMBNAIL_API_KEYS"].split(",")[0].strip()
    base_url = node.cluster.node_port_url(API_PORT)
    pg_pod = node.get(f"/api/v1/namespaces/{namespace}/pods/{name}-postgresql-0") or {}
    pg_forward = Forward(node.cluster.netns, 5432, target_ip=pg_pod["status"]["podIP"],
                         log=workdir / "forward-postgresql.log")
    pg_forward.start()
    out: dict[str, Any] = {}
    try:
        wait_for(pg_forward.listening, timeout=10, what="PostgreSQL forward")
        pg = {"host": "127.0.0.1", "port": pg_forward.host_port,
              "user": spec["postgresql"]["user"], "database": spec["postgresql"]["database"],
              "password": secrets["THUMBNAIL_DATABASE_PASSWORD"]}
        with httpx.Client(base_url=base_url, timeout=10) as http:
            wait_for(lambda: http.get("/healthz/detailed").status_code == 200, timeout=120,
                     what="/healthz/detailed through the NodePort", ignore=(httpx.HTTPError,))
        if args.idle_seconds > 0:
            progress(f"idle node with the sample Ready: CPU over {args.idle_seconds:.0f}s")
            idle = NodeCpu(node, [pg_forward])
            idle.start()
            time.sleep(args.idle_seconds)
            idle.stop()
            out["idle"] = {"rows": idle.rows(0), "seconds": idle.wall}
        for n in args.counts:
            window = args.window or 4 * n
            progress(f"== N={n}: scaling to {n} worker pod(s)")
            pods = scale_workers(node, namespace, name, n)
            headers = {"X-API-Key": api_key}
            # Warm-up until every worker pod has finished a job (bounded: 5 rounds).
            for attempt in range(5):
                asyncio.run(drive(base_url, headers, pg, images, jobs=4 * n, window=window,
                                  budget=60, job_timeout=60, label="warm-up"))
                done = jobs_done_by(node, namespace, pods)
                if all(done.values()):
                    break
                progress(f"warm-up {attempt + 1}: not every worker pod took a job yet {done}")
            if "worker_runtime" not in out:
                out["worker_runtime"] = worker_runtime(node, namespace, pods[0])
                progress(f"worker pod runtime: {out['worker_runtime']}")
            before = jobs_done_by(node, namespace, pods)
            meter = NodeCpu(node, [pg_forward])
            meter.start()
            result = asyncio.run(drive(base_url, headers, pg, images, jobs=args.jobs,
                                       window=window, budget=args.budget, job_timeout=60,
                                       label=f"node N={n}"))
            meter.stop()
            after = jobs_done_by(node, namespace, pods)
            result["window"] = window
            result["jobs_by_pod"] = {k: after[k] - before.get(k, 0) for k in after}
            result["cpu"] = meter.rows(result["jobs"])
            result["cpu_seconds"] = meter.used
            result["wall_seconds"] = meter.wall
            result["throttling"] = meter.throttle
            result["worker_throttling"] = meter.throttle.get(
                "pod: worker", {"throttled_share": 0.0, "throttled_s": 0.0})
            pods_and_node = sum(v for k, v in meter.used.items() if k != "machine")
            result["cpu_ms_per_job"] = pods_and_node / max(result["jobs"], 1) * 1000
            result["machine_cpu_ms_per_job"] = (
                meter.used.get("machine", 0.0) / max(result["jobs"], 1) * 1000)
            progress(
                f"node N={n}: {result['jobs']} jobs, {result['jobs_per_s']:.1f} jobs/s steady "
                f"({result['jobs_per_s_overall']:.1f} overall), p50 "
                f"{result['latency_ms'].get('p50', 0):.0f} ms, by pod {result['jobs_by_pod']}, "
                f"worker throttled in {100 * result['worker_throttling']['throttled_share']:.0f} "
                "% of periods"
            )
            out[f"N={n}"] = result
    finally:
        pg_forward.stop()
    return out


# -- baseline: bench.pipeline on loopback -----------------------------------------------------


def loopback(args: argparse.Namespace) -> dict[str, Any]:
    """`python -m bench.pipeline --no-peer` with the same workers, jobs, budget, window and
    image size; its JSON (from a temporary BENCH_RESULTS_DIR)."""
    with tempfile.TemporaryDirectory(prefix="bench-real-node-loopback-") as tmp:
        argv = [sys.executable, "-m", "bench.pipeline", "--no-peer",
                "--workers", ",".join(map(str, args.counts)), "--jobs", str(args.jobs),
                "--budget", f"{args.budget:g}", "--megapixels", f"{args.megapixels:g}",
                *(["--window", str(args.window)] if args.window else [])]
        progress(f"baseline: {' '.join(argv[1:])}")
        done = subprocess.run(argv, env={**os.environ, "BENCH_RESULTS_DIR": tmp},
                              stdout=subprocess.PIPE, text=True, timeout=1800, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"bench.pipeline failed (exit {done.returncode})")
        document: dict[str, Any] = json.loads((Path(tmp) / "pipeline.json").read_text())
        document["argv"] = argv[1:]
        return document


# -- main -------------------------------------------------------------------------------------


def ready_tables(ready: dict[str, Any]) -> tuple[list[Obj], list[Obj]]:
    bare, sample = ready["bare"], ready["sample"]
    rows = [
        {"system": "bare Deployment (1 pod, `wait` image, exec probe every 1 s)",
         "rounds": bare["n"], "median s": bare["median"], "min s": min(ready["bare_seconds"]),
         "max s": max(ready["bare_seconds"]), "ratio": 1.0},
        {"system": "ThumbnailService sample (6 pods + bucket-init Job)",
         "rounds": sample["n"], "median s": sample["median"],
         "min s": min(ready["sample_seconds"]), "max s": max(ready["sample_seconds"]),
         "ratio": ready["ratio"]},
    ]
    timeline_rows = []
    for component, t in ready["timeline_medians"].items():
        inits = ", ".join(f"{k} {v:g}" for k, v in t.get("init", {}).items())
        timeline_rows.append({
            "component": component, "readiness probe delay/period s": t.get("probe"),
            "created": t.get("created"),
            "scheduled": t.get("scheduled"), "init containers done": t.get("initialized"),
            "init (finished)": inits, "started": t.get("started"),
            "Ready / finished": t.get("ready") if t.get("ready") is not None
            else t.get("finished"),
        })
    return rows, timeline_rows


def throughput_rows(node: dict[str, Any], base: dict[str, Any] | None,
                    counts: Sequence[int]) -> list[Obj]:
    rows: list[Obj] = []
    for n in counts:
        ours = node[f"N={n}"]
        theirs = (base or {}).get("details", {}).get(f"N={n}", {}).get("pipeline")
        for system, r in (("real node, NodePort (pods)", ours),
                          ("loopback (processes)", theirs)):
            if r is None:
                continue
            lat = r.get("latency_ms", {})
            rows.append({
                "N": n, "system": system, "jobs": r["jobs"], "jobs/s": r["jobs_per_s"],
                "thumbs/s": 3 * r["jobs_per_s"], "jobs/s overall": r["jobs_per_s_overall"],
                "p50 ms": lat.get("p50"), "p95 ms": lat.get("p95"), "p99 ms": lat.get("p99"),
                "CPU ms/job": r.get("cpu_ms_per_job"),
                "ratio": (ours["jobs_per_s"] / theirs["jobs_per_s"]
                          if theirs and theirs["jobs_per_s"] else None)
                if system.startswith("real") else None,
                "ratio overall": (ours["jobs_per_s_overall"] / theirs["jobs_per_s_overall"]
                                  if theirs and theirs["jobs_per_s_overall"] else None)
                if system.startswith("real") else None,
            })
    return rows


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    images_index: dict[str, LocalImage] = local_images()
    refs = {name: image.ref for name, image in images_index.items()}
    body = with_images(load_documents(SAMPLE)[0], refs)
    data, source = make_images(args.megapixels)
    progress(f"input: {source}, {len(data[0]) / 1e3:.0f} kB; sample {SAMPLE.name}")
    facts: dict[str, Any] = {"images": source, "sample": str(SAMPLE.relative_to(SAMPLE.parents[2])),
                             "image_refs": refs}
    with tempfile.TemporaryDirectory(prefix="bench-real-node-") as tmp:
        workdir = Path(tmp)
        progress("starting the real node (waits if another one runs on this machine)")
        t_node = time.monotonic()
        # The substrate reports on stdout; stdout is for the tables here.
        with contextlib.redirect_stdout(sys.stderr), RealCluster(
            images=images_index, node_ports=(API_PORT, CONSOLE_PORT)
        ) as cluster:
            facts["node_start_seconds"] = round(time.monotonic() - t_node, 1)
            facts["node_timings"] = dict(cluster.timings)
            progress(f"real node up in {facts['node_start_seconds']:.0f}s {cluster.timings}")
            node = Node(cluster, args)
            t = time.monotonic()
            install_operator(cluster.kubeconfig, refs["operator"], workdir / "overlay",
                             timeout=args.timeout)
            facts["operator_available_seconds"] = round(time.monotonic() - t, 1)
            progress(f"operator available in {facts['operator_available_seconds']:.1f}s")
            progress(f"== apply->Ready: {args.repeats} round(s)")
            namespace, ready = phase_ready(node, body, refs["wait"])
            progress("== throughput through NodePort 30000")
            through = phase_throughput(node, namespace, body, data, workdir)
            t_stop = time.monotonic()
        facts["node_teardown_seconds"] = round(time.monotonic() - t_stop, 1)
    progress(f"real node torn down in {facts['node_teardown_seconds']:.0f}s")
    base = None
    if not args.no_loopback:
        progress("== baseline: bench.pipeline on loopback (same images, jobs, budget, window)")
        base = loopback(args)

    ready_rows, timeline_rows = ready_tables(ready)
    print("\napply -> Ready (seconds from `kubectl apply` to Available / READY True; "
          f"median of {args.repeats})\n")
    print(markdown_table(ready_rows, ["system", "rounds", "median s", "min s", "max s", "ratio"]))
    print("\nWhere the sample's time goes (median seconds after apply; pod timestamps have "
          "1 s resolution; for several pods the last one)\n")
    print(markdown_table(timeline_rows, ["component", "readiness probe delay/period s",
                                         "created", "scheduled",
                                         "init containers done", "init (finished)", "started",
                                         "Ready / finished"]))
    rows = throughput_rows(through, base, args.counts)
    print("\nThroughput (jobs/s steady as bench.pipeline; ratio = real node / loopback; "
          "3 thumbnails per job)\n")
    print(markdown_table(rows, ["N", "system", "jobs", "jobs/s", "thumbs/s", "jobs/s overall",
                                "p50 ms", "p95 ms", "p99 ms", "CPU ms/job", "ratio",
                                "ratio overall"]))
    for n in args.counts:
        r = through[f"N={n}"]
        print(f"\nCPU on the node, N={n} ({r['wall_seconds']:.0f} s window, {r['jobs']} jobs; "
              f"worker pods throttled in {100 * r['worker_throttling']['throttled_share']:.0f} % "
              f"of CFS periods, {r['worker_throttling']['throttled_s']:.1f} s; jobs by pod "
              f"{r['jobs_by_pod']})\n")
        print(markdown_table(r["cpu"], ["component", "cpu_s", "cores", "ms/job",
                                        "CFS throttled"]))
    if "idle" in through:
        idle_s = through["idle"]["seconds"]
        print(f"\nCPU of the idle node with the sample Ready ({idle_s:.0f} s)\n")
        print(markdown_table(through["idle"]["rows"], ["component", "cpu_s", "cores"]))
    facts["wall_seconds"] = round(time.monotonic() - started, 1)
    progress(f"done in {facts['wall_seconds']:.0f}s")
    write_results(
        "real_node",
        [*({"phase": "apply->Ready", **r} for r in ready_rows),
         *({"phase": "throughput", **r} for r in rows)],
        **facts,
        ready=ready,
        timeline=timeline_rows,
        throughput=through,
        loopback=base,
        settings={"repeats": args.repeats, "workers": args.counts, "jobs": args.jobs,
                  "budget": args.budget, "window": args.window or "4 x worker pods",
                  "megapixels": args.megapixels},
    )


if __name__ == "__main__":
    main()
