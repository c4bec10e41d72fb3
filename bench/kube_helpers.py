"""Plumbing of the operator benchmark: install the operator, run it as a process, sample it,
count API writes from the audit log, drive kubectl.

The operator runs exactly as in a cluster: the `thumbnail-operator` console script, with a
kubeconfig holding a token of its ServiceAccount (RBAC from operator/rbac.yaml), serving its
own conversion webhook, which the API server reaches through an ExternalName Service pointing
at localhost (thumbnail_substrate.local_webhook).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml

from thumbnail_operator.kube import ApiError, KubeClient
from thumbnail_substrate.deploy import OPERATOR_NAMESPACE
from thumbnail_substrate.local_webhook import external_name_service
from thumbnail_substrate.operator_harness import (
    OPERATOR_ACCOUNT,
    kubeconfig_for,
    operator_configuration,
)
from thumbnail_substrate.process import free_port
from thumbnail_substrate.testing import apply_object, load_documents, wait_for

ROOT = Path(__file__).resolve().parents[1]
CRD_FILE = ROOT / "crds" / "thumbnailservices.yaml"
BACKUP_CRD_FILE = ROOT / "crds" / "thumbnailbackups.yaml"
RBAC_FILE = ROOT / "operator" / "rbac.yaml"
SAMPLE_V1 = ROOT / "crds" / "samples" / "thumbnailservice.yaml"  # written in v1

OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_ACCOUNT}"
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
TNS_PATH = "/apis/thumbnails.platform.dev/v1"

Obj = dict[str, Any]
T = TypeVar("T")


def has_default_account(admin: KubeClient, namespace: str) -> bool:
    try:
        admin.request("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/default")
        return True
    except ApiError:
        return False


# -- the ThumbnailService and the bare Deployment ------------------------------------------


def thumbnail_service(name: str, namespace: str, labels: dict[str, str]) -> Obj:
    """The shipped v1 sample, renamed, without node ports (they are unique cluster-wide)."""
    body = copy.deepcopy(load_documents(SAMPLE_V1)[0])
    assert body["apiVersion"].endswith("/v1"), f"{SAMPLE_V1} is no longer the v1 sample"
    body["metadata"] = {"name": name, "namespace": namespace, "labels": labels}
    spec = body["spec"]
    spec["server"]["service"]["nodePort"]["enabled"] = False
    spec["objectStorage"]["managed"]["console"]["nodePort"]["enabled"] = False
    return body


def pods_of(tns: Obj) -> int:
    """Long-running pods of one ThumbnailService: server + workers + PostgreSQL, Redis, MinIO."""
    spec = tns["spec"]
    return int(spec["server"]["replicas"]) + int(spec["workers"]["replicas"]) + 3


def bare_deployment(
    name: str, namespace: str, replicas: int, labels: dict[str, str] | None = None
) -> Obj:
    selector = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": selector},
                "spec": {"containers": [{"name": "main", "image": "example.invalid/app:1"}]},
            },
        },
    }


def tns_ready(obj: Obj) -> bool:
    generation = obj.get("metadata", {}).get("generation")
    status = obj.get("status") or {}
    return status.get("observedGeneration") == generation and any(
        cond.get("type") == "Ready" and cond.get("status") == "True"
        for cond in status.get("conditions") or []
    )


def deployment_available(obj: Obj) -> bool:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    wanted = spec.get("replicas", 1)
    return bool(
        status.get("observedGeneration") == obj.get("metadata", {}).get("generation")
        and status.get("availableReplicas") == wanted
        and status.get("updatedReplicas") == wanted
    )


def to_yaml(documents: Iterable[Obj]) -> str:
    return yaml.safe_dump_all(list(documents), sort_keys=False)


# -- installing the operator ------------------------------------------------------------------


def install(admin: KubeClient, webhook_port: int) -> None:
    """RBAC, the webhook's ExternalName Service on localhost:webhook_port, the shipped CRD
    with that port (the operator publishes its CA in caBundle when it starts)."""
    for document in load_documents(RBAC_FILE):
        apply_object(admin, document, field_manager="bench")
    apply_object(admin, external_name_service(webhook_port), field_manager="bench")
    crd = load_documents(CRD_FILE)[0]
    conversion = crd["spec"].get("conversion") or {}
    if conversion.get("strategy") == "Webhook":
        conversion["webhook"]["clientConfig"]["service"]["port"] = webhook_port
    apply_object(admin, crd, field_manager="bench")
    apply_object(admin, load_documents(BACKUP_CRD_FILE)[0], field_manager="bench")
    path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"

    def established() -> bool:
        conditions = (admin.request("GET", path).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    wait_for(established, timeout=30, what="CRD established")


def service_account_kubeconfig(admin: KubeClient, path: Path) -> Path:
    """A kubeconfig with a TokenRequest token of the operator's ServiceAccount."""
    return kubeconfig_for(operator_configuration(admin), path)


# -- the operator process ---------------------------------------------------------------------


def _proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (KiB) of a live process."""
    values: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    except (OSError, ValueError):
        pass
    return values


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class OperatorProcess:
    """`thumbnail-operator` as a child process, its RSS sampled from /proc every 0.2 s."""

    kubeconfig: Path
    log: Path
    webhook_port: int
    extra_args: Sequence[str] = ()
    metrics_port: int = field(default_factory=free_port)
    liveness_port: int = field(default_factory=free_port)
    peak_rss_kib: int = 0
    _process: subprocess.Popen[bytes] | None = None
    _sampler: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> None:
        command = Path(sys.executable).with_name("thumbnail-operator")
        argv = [
            str(command),
            "--kubeconfig",
            str(self.kubeconfig),
            "--metrics-port",
            str(self.metrics_port),
            "--liveness-port",
            str(self.liveness_port),
            "--webhook-port",
            str(self.webhook_port),
            "--webhook-host",
            "127.0.0.1",
            "--webhook-namespace",
            OPERATOR_NAMESPACE,
            "--webhook-extra-host",
            "127.0.0.1",
            "--webhook-extra-host",
            "localhost",
            "--log-level",
            "INFO",
            *self.extra_args,
        ]
        with self.log.open("ab") as out:
            self._process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "KUBECONFIG": "/nonexistent"},  # only its own kubeconfig
            )
        self._sampler = threading.Thread(target=self._sample, name="rss", daemon=True)
        self._sampler.start()

        def healthy() -> bool:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"thumbnail-operator exited; see {self.log}")
            return http_get(f"http://127.0.0.1:{self.liveness_port}/healthz")[0] == 200

        wait_for(healthy, timeout=60, what="operator liveness", interval=0.2)

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            rss = _proc_status(self.pid).get("VmRSS", 0)
            self.peak_rss_kib = max(self.peak_rss_kib, rss)

    def memory(self) -> dict[str, float]:
        """Current RSS, sampled peak and the kernel's high-water mark (VmHWM), MiB."""
        status = _proc_status(self.pid)
        self.peak_rss_kib = max(self.peak_rss_kib, status.get("VmRSS", 0))
        return {
            "rss_mib": status.get("VmRSS", 0) / 1024,
            "sampled_peak_rss_mib": self.peak_rss_kib / 1024,
            "vm_hwm_mib": status.get("VmHWM", 0) / 1024,
        }

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def metrics(self) -> dict[str, float]:
        """The operator's own Prometheus counters (thumbnail_operator_*), summed by name."""
        _, text = http_get(f"http://127.0.0.1:{self.metrics_port}/metrics")
        totals: dict[str, float] = {}
        for line in text.splitlines():
            if not line.startswith("thumbnail_operator_"):
                continue
            name_labels, _, value = line.rpartition(" ")
            name = name_labels.partition("{")[0]
            if name.endswith(("_total", "_count", "_sum")):
                try:
                    totals[name_labels] = totals.get(name_labels, 0.0) + float(value)
                except ValueError:
                    continue
        return totals

    def stop(self) -> None:
        self._stop.set()
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode()
    except OSError:
        return 0, ""


# -- the audit log ----------------------------------------------------------------------------


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AuditWrite:
    at: datetime
    user: str
    verb: str
    resource: str  # resource[/subresource]
    namespace: str
    name: str
    code: int


class AuditLog:
    """Write requests from the API server's audit log (KubeCluster(audit=True)), read
    incrementally (the log grows to tens of MB while hundreds of pods start)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self.writes: list[AuditWrite] = []

    def refresh(self) -> list[AuditWrite]:
        if not self.path.exists():
            return self.writes
        with self.path.open("rb") as log:
            log.seek(self._offset)
            chunk = log.read()
        complete = chunk.rfind(b"\n") + 1  # a partly written last line waits for next time
        self._offset += complete
        for line in chunk[:complete].splitlines():
            if not line.strip():
                continue
            event = json.loads(line)
            if event.get("verb") not in WRITE_VERBS or event.get("stage") != "ResponseComplete":
                continue
            ref = event.get("objectRef") or {}
            resource = ref.get("resource", "")
            if ref.get("subresource"):
                resource += "/" + ref["subresource"]
            self.writes.append(
                AuditWrite(
                    at=datetime.fromisoformat(event["stageTimestamp"]),
                    user=event.get("user", {}).get("username", ""),
                    verb=event["verb"],
                    resource=resource,
                    namespace=ref.get("namespace", ""),
                    name=ref.get("name", ""),
                    code=int((event.get("responseStatus") or {}).get("code", 0)),
                )
            )
        return self.writes

    def between(self, start: datetime, end: datetime, user: str | None = None) -> list[AuditWrite]:
        return [
            w for w in self.refresh() if start <= w.at < end and (user is None or w.user == user)
        ]


def breakdown(writes: Iterable[AuditWrite], by: Callable[[AuditWrite], str]) -> dict[str, int]:
    return dict(Counter(by(w) for w in writes).most_common())
