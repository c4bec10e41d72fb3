"""Operator benchmark on the real local control plane (docs/bench/operator.md).

1. apply -> Ready: `kubectl apply -f` one ThumbnailService, poll until its Ready condition is
   True (for the current generation); baseline: a bare Deployment with as many replicas as the
   ThumbnailService has long-running pods, applied the same way, until all are available.
   Interleaved, `--repeats` rounds, medians and the ratio.
2. `--count` ThumbnailServices at once (one namespace each, one `kubectl apply` of all of
   them): time until every one is Ready, the operator's CPU time and peak memory (sampled
   VmRSS and the kernel's VmHWM from /proc), and its writes (audit log).
3. Idle: once everything is Ready (plus a settle period), API writes by the operator's
   ServiceAccount over `--idle-seconds` (target: zero), from the API server's audit log.
4. Control-plane ceiling: `--count` bare Deployments (same pods each) at once, until all
   are available — what the cluster itself needs for the same number of pods.

The operator runs as the `thumbnail-operator` process with its ServiceAccount's token.

    python -m bench.operator_scale [--quick] [--count 100] [--idle-seconds 60] [--repeats N]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import bounded, markdown_table, progress, summary, write_results
from bench.kube_helpers import (
    OPERATOR_USER,
    TNS_PATH,
    AuditLog,
    OperatorProcess,
    bare_deployment,
    breakdown,
    deployment_available,
    has_default_account,
    install,
    pods_of,
    service_account_kubeconfig,
    thumbnail_service,
    tns_ready,
    to_yaml,
    utc_now,
)
from thumbnail_operator.kube import DEPLOYMENT, THUMBNAIL_SERVICE, KubeClient, load_configuration
from thumbnail_substrate.kube import KubeCluster
from thumbnail_substrate.process import free_port
from thumbnail_substrate.testing import ensure_namespace, kubectl, wait_for

Obj = dict[str, Any]
NODE_PODS = 500
SCALE_LABEL = "bench.platform.dev/phase"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.operator_scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="development run: 10 resources, 2 repeats, 20 s idle window",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        help="ThumbnailServices created at once (default 100; quick 10)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="apply->Ready rounds, interleaved with the baseline (default 5)",
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=None,
        help="idle window for counting writes (default 60; quick 20)",
    )
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=10.0,
        help="wait after the last Ready before the idle window starts",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1200.0,
        help="upper bound for any one wait (all Ready, all available)",
    )
    parser.add_argument(
        "--client-qps",
        type=float,
        default=None,
        help="raise kube-controller-manager/kube-scheduler client QPS "
        "(default: their own defaults, 20 and 50)",
    )
    parser.add_argument(
        "--resync-seconds",
        type=float,
        default=60.0,
        help="the operator's --resync-seconds (its default: 60)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="the operator's --workers (reconcile passes at once; default: its own)",
    )
    parser.add_argument(
        "--no-baseline-scale", action="store_true", help="skip phase 4 (bare Deployments at scale)"
    )
    parser.add_argument(
        "--keep-logs",
        type=Path,
        default=None,
        help="copy the operator log and the audit log here at the end",
    )
    args = parser.parse_args(argv)
    args.count = args.count or (10 if args.quick else 100)
    args.repeats = args.repeats or (2 if args.quick else 5)
    if args.idle_seconds is None:
        args.idle_seconds = 20.0 if args.quick else 60.0
    return args


class Bench:
    def __init__(self, args: argparse.Namespace, cluster: KubeCluster, workdir: Path) -> None:
        self.args = args
        self.cluster = cluster
        self.workdir = workdir
        self.admin = KubeClient(load_configuration(str(cluster.kubeconfig)))
        self.audit = AuditLog(cluster.audit_log)
        self.operator: OperatorProcess | None = None
        self.rows: list[Obj] = []
        self.facts: Obj = {}
        self.ready_wall = utc_now()

    # -- setup ----------------------------------------------------------------------------

    def start_operator(self) -> OperatorProcess:
        webhook_port = free_port()
        install(self.admin, webhook_port)
        kubeconfig = service_account_kubeconfig(self.admin, self.workdir / "operator.kubeconfig")
        operator = OperatorProcess(
            kubeconfig,
            self.workdir / "operator.log",
            webhook_port,
            extra_args=[
                "--resync-seconds",
                f"{self.args.resync_seconds:g}",
                *(["--workers", str(self.args.workers)] if self.args.workers else []),
            ],
        )
        operator.start()
        self.operator = operator
        progress(f"operator pid {operator.pid} healthy; log {operator.log}")
        return operator

    def namespaces(self, prefix: str, count: int) -> list[str]:
        names = [f"{prefix}-{i:03d}" for i in range(count)]
        for name in names:
            ensure_namespace(self.admin, name, {SCALE_LABEL: prefix})
        # Pods need the namespace's default ServiceAccount: not part of what is measured.
        for name in names:
            wait_for(
                lambda n=name: has_default_account(self.admin, n),  # type: ignore[misc]
                timeout=60,
                what=f"{name} default ServiceAccount",
            )
        return names

    # -- 1. apply -> Ready ------------------------------------------------------------------

    def _apply(self, documents: list[Obj]) -> None:
        kubectl(
            self.cluster.kubeconfig,
            "apply",
            "-f",
            "-",
            stdin=to_yaml(documents),
            timeout=self.args.timeout,
        )

    def one_tns(self, namespace: str) -> float:
        body = thumbnail_service("bench", namespace, {SCALE_LABEL: "latency"})
        started = time.monotonic()
        self._apply([body])

        def ready() -> bool:
            obj = self.admin.get(THUMBNAIL_SERVICE, namespace, "bench")
            return obj is not None and tns_ready(obj)

        wait_for(ready, timeout=self.args.timeout, what=f"{namespace}/bench Ready", interval=0.05)
        return time.monotonic() - started

    def one_deployment(self, namespace: str, replicas: int) -> float:
        started = time.monotonic()
        self._apply([bare_deployment("bare", namespace, replicas)])

        def available() -> bool:
            obj = self.admin.get(DEPLOYMENT, namespace, "bare")
            return obj is not None and deployment_available(obj)

        wait_for(
            available, timeout=self.args.timeout, what=f"{namespace}/bare available", interval=0.05
        )
        return time.monotonic() - started

    def latency(self) -> None:
        replicas = pods_of(thumbnail_service("x", "x", {}))
        namespaces = self.namespaces("bench-latency", self.args.repeats)
        tns: list[float] = []
        bare: list[float] = []
        for index in bounded(self.args.repeats, budget_seconds=self.args.timeout):
            namespace = namespaces[index]
            # Interleaved, alternating which goes first, so drift hits both alike.
            order = ("tns", "bare") if index % 2 == 0 else ("bare", "tns")
            for which in order:
                if which == "tns":
                    tns.append(self.one_tns(namespace))
                else:
                    bare.append(self.one_deployment(namespace, replicas))
            progress(
                f"round {index + 1}: ThumbnailService {tns[-1]:.2f}s, "
                f"bare Deployment ({replicas} replicas) {bare[-1]:.2f}s"
            )
        tns_s, bare_s = summary(tns), summary(bare)
        ratio = tns_s["median"] / bare_s["median"]
        self.rows.append(
            {
                "measure": "kubectl apply -> Ready (one resource), median s",
                "operator": round(tns_s["median"], 2),
                "baseline": round(bare_s["median"], 2),
                "ratio": round(ratio, 2),
                "n": len(tns),
                "notes": f"baseline: bare Deployment, {replicas} replicas (the CR's pods); "
                f"p95 {tns_s['p95']:.2f} vs {bare_s['p95']:.2f}",
            }
        )
        time.sleep(2)  # the audit log is written when responses complete
        paths = [critical_path(self.audit, ns) for ns in namespaces[: len(tns)]]
        medians = {
            mark: round(statistics.median(p[mark] for p in paths if mark in p), 3)
            for mark in CRITICAL_MARKS
            if any(mark in p for p in paths)
        }
        self.rows.append(
            {
                "measure": "where one apply->Ready goes (median s after the create)",
                "notes": ", ".join(f"{mark} {value:.2f}" for mark, value in medians.items()),
            }
        )
        self.facts["latency"] = {
            "tns_seconds": tns,
            "bare_seconds": bare,
            "tns": tns_s,
            "bare": bare_s,
            "bare_replicas": replicas,
            "critical_path_median": medians,
            "critical_paths": paths,
        }

    # -- 2. many at once ----------------------------------------------------------------------

    def _list_ready(self, path: str, label: str, is_ready: Any) -> dict[str, bool]:
        listed = self.admin.request("GET", path, query={"labelSelector": label})
        return {
            f"{o['metadata']['namespace']}/{o['metadata']['name']}": bool(is_ready(o))
            for o in listed.get("items", [])
        }

    def _until_all(
        self, path: str, label: str, is_ready: Any, count: int, what: str, started: float
    ) -> dict[str, float]:
        """Poll a cluster-wide list until `count` objects are ready; per-object ready time
        (seconds since `started`, the monotonic time before `kubectl apply`)."""
        ready_at: dict[str, float] = {}
        last_report = started
        deadline = started + self.args.timeout
        while len(ready_at) < count:
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(
                    f"{what}: only {len(ready_at)}/{count} ready after {self.args.timeout:.0f}s"
                )
            for key, ok in self._list_ready(path, label, is_ready).items():
                if ok and key not in ready_at:
                    ready_at[key] = now - started
            if now - last_report > 15:
                progress(f"{what}: {len(ready_at)}/{count} ready after {now - started:.0f}s")
                last_report = now
            time.sleep(0.5)
        return ready_at

    def at_scale(self) -> None:
        assert self.operator is not None
        count = self.args.count
        namespaces = self.namespaces("bench-scale", count)
        bodies = [thumbnail_service("bench", ns, {SCALE_LABEL: "scale"}) for ns in namespaces]
        memory_before = self.operator.memory()
        cpu_before = self.operator.cpu_seconds()
        metrics_before = self.operator.metrics()
        started_at = utc_now()
        started = time.monotonic()
        progress(f"applying {count} ThumbnailServices at once (one namespace each)")
        self._apply(bodies)
        applied = time.monotonic() - started
        ready_at = self._until_all(
            f"{TNS_PATH}/thumbnailservices",
            f"{SCALE_LABEL}=scale",
            tns_ready,
            count,
            "ThumbnailServices",
            started,
        )
        elapsed = time.monotonic() - started
        self.ready_wall = utc_now()
        cpu = self.operator.cpu_seconds() - cpu_before
        memory = self.operator.memory()
        metrics = self.operator.metrics()
        writes = self.audit.between(started_at, self.ready_wall, OPERATOR_USER)
        times = sorted(ready_at.values())
        passes = _delta(metrics, metrics_before, "thumbnail_operator_reconciles_total")
        self.rows += [
            {
                "measure": f"{count} ThumbnailServices at once -> all Ready, s",
                "operator": round(elapsed, 1),
                "n": count,
                "notes": f"first Ready {times[0]:.1f}s, median {statistics.median(times):.1f}s; "
                f"kubectl apply itself {applied:.1f}s",
            },
            {
                "measure": "operator peak RSS during the burst, MiB",
                "operator": round(memory["sampled_peak_rss_mib"], 1),
                "notes": f"VmHWM {memory['vm_hwm_mib']:.1f} MiB; before the burst "
                f"{memory_before['rss_mib']:.1f} MiB",
            },
            {
                "measure": "operator CPU during the burst, s (share of wall time)",
                "operator": round(cpu, 1),
                "ratio": round(cpu / elapsed, 2),
                "notes": f"{passes:.0f} reconcile passes; {len(writes)} API writes",
            },
        ]
        self.facts["scale"] = {
            "count": count,
            "all_ready_seconds": elapsed,
            "kubectl_apply_seconds": applied,
            "ready_seconds": summary(times),
            "operator_cpu_seconds": cpu,
            "memory_before": memory_before,
            "memory_after": memory,
            "reconcile_passes": passes,
            "operator_writes": len(writes),
            "operator_writes_by_resource": breakdown(writes, lambda w: f"{w.verb} {w.resource}"),
            "writes_by_user": breakdown(
                self.audit.between(started_at, self.ready_wall), lambda w: w.user
            ),
            "metrics": metrics,
        }

    # -- 3. idle ---------------------------------------------------------------------------------

    def idle(self) -> None:
        assert self.operator is not None
        settle = self.args.settle_seconds
        progress(f"settling {settle:.0f}s, then counting writes for {self.args.idle_seconds:.0f}s")
        time.sleep(settle)
        start = utc_now()
        cpu_before = self.operator.cpu_seconds()
        metrics_before = self.operator.metrics()
        deadline = time.monotonic() + self.args.idle_seconds
        while time.monotonic() < deadline:
            time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
            self.audit.refresh()  # read as it grows
        end = utc_now()
        time.sleep(2)  # the audit backend writes each event when its response completes
        window = (end - start).total_seconds()
        ours = self.audit.between(start, end, OPERATOR_USER)
        settling = self.audit.between(self.ready_wall, start, OPERATOR_USER)
        everyone = self.audit.between(start, end)
        cpu = self.operator.cpu_seconds() - cpu_before
        passes = _delta(
            self.operator.metrics(), metrics_before, "thumbnail_operator_reconciles_total"
        )
        per_minute = len(ours) * 60 / window
        others = breakdown((w for w in everyone if w.user != OPERATOR_USER), lambda w: w.user)
        self.rows += [
            {
                "measure": f"operator API writes per minute when idle ({window:.0f}s window)",
                "operator": round(per_minute, 2),
                "baseline": 0,
                "n": len(ours),
                "notes": (
                    "target 0: "
                    + (
                        "met"
                        if not ours
                        else "MISSED: "
                        + ", ".join(f"{k} x{v}" for k, v in breakdown(ours, _what).items())
                    )
                )
                + f"; {passes:.0f} resync passes, {cpu:.1f}s CPU",
            },
            {
                "measure": "everyone else's writes per minute in the same window",
                "operator": round((len(everyone) - len(ours)) * 60 / window, 1),
                "notes": "admin = controller manager, scheduler and kwok (one kubeconfig): "
                + ", ".join(f"{user or '?'} {n}" for user, n in list(others.items())[:4]),
            },
        ]
        self.facts["idle"] = {
            "window_seconds": window,
            "settle_seconds": settle,
            "operator_writes": len(ours),
            "operator_writes_per_minute": per_minute,
            "operator_writes_detail": breakdown(ours, _what),
            "operator_writes_while_settling": breakdown(settling, _what),
            "resync_passes": passes,
            "operator_cpu_seconds": cpu,
            "other_writes_by_user": others,
            "memory": self.operator.memory(),
        }

    # -- 4. the control plane alone at the same scale ------------------------------------------

    def baseline_scale(self) -> None:
        count = self.args.count
        replicas = pods_of(thumbnail_service("x", "x", {}))
        namespaces = self.namespaces("bench-bare", count)
        started = time.monotonic()
        progress(f"applying {count} bare Deployments ({replicas} replicas each) at once")
        self._apply(
            [bare_deployment("bare", ns, replicas, {SCALE_LABEL: "bare"}) for ns in namespaces]
        )
        ready_at = self._until_all(
            "/apis/apps/v1/deployments",
            f"{SCALE_LABEL}=bare",
            deployment_available,
            count,
            "bare Deployments",
            started,
        )
        elapsed = time.monotonic() - started
        scale = self.facts["scale"]["all_ready_seconds"]
        self.rows.append(
            {
                "measure": f"{count} bare Deployments at once -> all available, s",
                "operator": round(scale, 1),
                "baseline": round(elapsed, 1),
                "ratio": round(scale / elapsed, 2),
                "n": count,
                "notes": f"{replicas} replicas each, i.e. the CRs' long-running pods without "
                f"the operator, StatefulSets, volumes or Jobs; median "
                f"{statistics.median(ready_at.values()):.1f}s",
            }
        )
        self.facts["baseline_scale"] = {
            "all_available_seconds": elapsed,
            "available_seconds": summary(sorted(ready_at.values())),
        }

    def close(self) -> None:
        if self.operator is not None:
            self.facts["operator_final_memory"] = self.operator.memory()
            self.operator.stop()
        self.admin.close()


CRITICAL_MARKS = (
    "operator first write",
    "operator last child write",
    "last Pod status",
    "last StatefulSet status",
    "last Deployment status",
    "last Job status",
    "Ready written",
)
_CHILD_RESOURCES = {"configmaps", "secrets", "services", "deployments", "statefulsets", "jobs"}


def critical_path(audit: AuditLog, namespace: str) -> dict[str, float]:
    """Seconds from the ThumbnailService's create to each step that led to Ready (audit log;
    the bare Deployment sharing the namespace is left out)."""
    writes = [
        w
        for w in audit.refresh()
        if w.namespace == namespace and w.name != "bare" and not w.name.startswith("bare-")
    ]
    created = [w.at for w in writes if w.resource == "thumbnailservices" and w.verb == "create"]
    ready = [w.at for w in writes if w.resource == "thumbnailservices/status"]
    if not created or not ready:
        return {}
    start, end = created[0], ready[-1]

    def offset(moment: Any) -> float:
        return float((moment - start).total_seconds())

    ours = [w for w in writes if w.user == OPERATOR_USER and w.resource in _CHILD_RESOURCES]
    marks: dict[str, float] = {}
    if ours:
        marks["operator first write"] = offset(ours[0].at)
        marks["operator last child write"] = offset(ours[-1].at)
    for resource, mark in (
        ("pods/status", "last Pod status"),
        ("statefulsets/status", "last StatefulSet status"),
        ("deployments/status", "last Deployment status"),
        ("jobs/status", "last Job status"),
    ):
        moments = [w.at for w in writes if w.resource == resource and w.at <= end]
        if moments:
            marks[mark] = offset(moments[-1])
    marks["Ready written"] = offset(end)
    return marks


def _what(write: Any) -> str:
    return f"{write.verb} {write.resource} {write.namespace}/{write.name}".replace(" /", " ")


def _delta(after: dict[str, float], before: dict[str, float], prefix: str) -> float:
    return sum(v - before.get(k, 0.0) for k, v in after.items() if k.startswith(prefix))


def cluster_size(args: argparse.Namespace) -> dict[str, int]:
    per_cr = pods_of(thumbnail_service("x", "x", {})) + 1  # + the bucket-init Job's pod
    pods = args.repeats * (2 * per_cr) + args.count * (2 * per_cr)
    nodes = max(2, math.ceil(pods * 1.25 / NODE_PODS))
    return {"nodes": nodes, "node_pods": NODE_PODS, "pv_pool": 2 * (args.count + args.repeats) + 10}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    size = cluster_size(args)
    progress(
        f"starting the control plane: {size} audit log on, client QPS "
        f"{args.client_qps or 'defaults'}"
    )
    with (
        tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp,
        KubeCluster(
            nodes=size["nodes"],
            node_pods=size["node_pods"],
            pv_pool=size["pv_pool"],
            audit=True,
            client_qps=args.client_qps,
        ) as cluster,
    ):
        progress(f"control plane up in {cluster.startup_seconds:.1f}s")
        bench = Bench(args, cluster, Path(tmp))
        try:
            bench.start_operator()
            bench.latency()
            bench.at_scale()
            bench.idle()
            if not args.no_baseline_scale:
                bench.baseline_scale()
        finally:
            bench.close()
            if args.keep_logs is not None:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                for source in (Path(tmp) / "operator.log", cluster.audit_log):
                    if source.exists():
                        (args.keep_logs / source.name).write_bytes(source.read_bytes())
    print(markdown_table(bench.rows, ["measure", "operator", "baseline", "ratio", "n", "notes"]))
    write_results(
        "operator",
        bench.rows,
        cluster=size,
        client_qps=args.client_qps,
        resync_seconds=args.resync_seconds,
        operator_workers=args.workers,
        idle_seconds=args.idle_seconds,
        settle_seconds=args.settle_seconds,
        quick=args.quick,
        facts=bench.facts,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
