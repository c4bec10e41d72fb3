"""The `thumbnail-operator` command itself: kubeconfig login, liveness, metrics, reconciling."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.operator.support import (
    InProcessOperator,
    free_port,
    sample,
    wait_for,
    wait_ready,
)
from thumbnail_operator.kube import THUMBNAIL_SERVICE_V1ALPHA1, KubeClient
from thumbnail_substrate.operator_harness import kubeconfig_for

pytestmark = pytest.mark.cluster


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status), response.read().decode()
    except OSError:
        return 0, ""


@pytest.fixture
def command(
    operator: InProcessOperator, operator_configuration: client.Configuration, tmp_path: Path
) -> Iterator[dict[str, int]]:
    """The real command in a subprocess, while the in-process operator is stopped."""
    kubeconfig = kubeconfig_for(operator_configuration, tmp_path / "kubeconfig")
    ports = {"metrics": free_port(), "liveness": free_port()}
    with operator.stopped():
        process = subprocess.Popen(
            [sys.executable, "-c", "from thumbnail_operator.cli import main; main()",
             "--kubeconfig", str(kubeconfig), "--metrics-port", str(ports["metrics"]),
             "--liveness-port", str(ports["liveness"]), "--log-level", "INFO",
             # 9443 is the session's shared webhook (tools/thumbnail_substrate/local_webhook.py)
             "--webhook-port", str(free_port())],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "KUBECONFIG": "/nonexistent"},
        )
        try:
            yield ports
        finally:
            process.terminate()
            output, _ = process.communicate(timeout=30)
            print(output)
    assert process.returncode in (0, -15), output


def test_command_reconciles_and_serves_probe_and_metrics(
    admin: KubeClient, command: dict[str, int], namespace: str
) -> None:
    wait_for(lambda: http_get(f"http://127.0.0.1:{command['liveness']}/healthz")[0] == 200,
             timeout=20, what="liveness endpoint")
    admin.request("POST", THUMBNAIL_SERVICE_V1ALPHA1.path(namespace),
                  body=sample("cli", persistence={"enabled": False}))
    wait_ready(admin, namespace, "cli", timeout=90)
    status, metrics = http_get(f"http://127.0.0.1:{command['metrics']}/metrics")
    assert status == 200
    ok = [line for line in metrics.splitlines()
          if line.startswith('thumbnail_operator_reconciles_total{result="ok"}')]
    assert ok and float(ok[0].split()[-1]) >= 1
    assert "thumbnail_operator_child_writes_total" in metrics

