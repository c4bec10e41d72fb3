"""The worker supervisor's policy and loop, on stand-in processes (no servers): a dead process
is replaced, a silent one is killed and replaced, a crash loop ends the supervisor with 1,
SIGTERM stops everything with 0, and the health endpoints say so."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.service.scrape import Scrape
from thumbnail_service.settings import Settings
from thumbnail_service.worker.supervisor import RestartPolicy, Slot, Supervisor, serve_health
from thumbnail_substrate.process import free_port

BEATING = (
    "import time\n"
    "from thumbnail_service.worker.link import SupervisorLink\n"
    "link = SupervisorLink.from_environment()\n"
    "for _ in range(600):\n"
    "    link.beat()\n"
    "    time.sleep(0.05)\n"
)
SILENT = "import time; time.sleep(30)"
FINISHED = "thumbnail_worker_jobs_finished_total"
RESTARTS = "thumbnail_worker_process_restarts_total"
CRASHING = "import sys; sys.exit(3)"


def test_restart_policy_backs_off_then_gives_up() -> None:
    policy = RestartPolicy(stable_seconds=30, max_quick_deaths=5)
    deaths, delays = 0, []
    for _ in range(4):
        deaths, delay = policy.after_death(1.0, deaths)
        delays.append(delay)
    assert delays == [0.0, 1.0, 2.0, 4.0]
    assert policy.after_death(1.0, deaths) == (5, None)  # the 5th quick death: give up
    assert policy.after_death(31.0, 4) == (0, 0.0)  # a process that ran long starts over


def test_restart_delay_is_capped() -> None:
    assert RestartPolicy(max_quick_deaths=99, max_delay_seconds=8).after_death(0, 10)[1] == 8


def stand_in(code: str) -> list[str]:
    return [sys.executable, "-c", code]


@pytest.fixture
def supervisor() -> Iterator[Supervisor]:
    settings = Settings(worker_heartbeat_seconds=0.2, job_timeout_seconds=1)
    sup = Supervisor(settings, RestartPolicy(max_quick_deaths=3), startup_grace_seconds=1.0)
    sup.slots = [Slot("a", stand_in(BEATING)), Slot("b", stand_in(BEATING))]
    yield sup
    for slot in sup.slots:  # whatever a failed test left running
        if slot.proc is not None and slot.proc.poll() is None:
            slot.proc.kill()
            slot.proc.wait()


def run_in_thread(sup: Supervisor) -> tuple[threading.Thread, list[int]]:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(sup.run()), daemon=True)
    thread.start()
    return thread, result


def wait_until(check: Any, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        time.sleep(0.05)
    return time.monotonic() - started


def ready(sup: Supervisor) -> bool:
    return sup.status()[1]


def stop(sup: Supervisor, thread: threading.Thread, result: list[int]) -> int:
    sup.request_stop(signal.SIGTERM)
    thread.join(15)
    assert not thread.is_alive()
    return result[0]


def test_a_killed_process_is_replaced_and_the_others_carry_on(supervisor: Supervisor) -> None:
    thread, result = run_in_thread(supervisor)
    wait_until(lambda: ready(supervisor), 10, "both stand-ins beating")
    a, b = supervisor.slots
    victim, bystander = a.pid, b.pid
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    took = wait_until(lambda: a.pid not in (None, victim) and ready(supervisor), 10,
                      "a replacement")
    assert b.pid == bystander and a.restarts == 1
    assert a.history == ["killed by SIGKILL"]
    assert stop(supervisor, thread, result) == 0
    print(f"\nreplaced and beating {took:.2f}s after SIGKILL")


def test_a_silent_process_is_killed_and_replaced(supervisor: Supervisor) -> None:
    thread, result = run_in_thread(supervisor)
    wait_until(lambda: ready(supervisor), 10, "both stand-ins beating")
    a = supervisor.slots[0]
    hung = a.pid
    assert hung is not None
    os.kill(hung, signal.SIGSTOP)  # alive, silent
    wait_until(lambda: not ready(supervisor), 5, "readiness to turn")
    wait_until(lambda: a.pid not in (None, hung) and ready(supervisor), 10, "a replacement")
    assert a.history == ["killed by SIGKILL after missing its heartbeats"]
    assert stop(supervisor, thread, result) == 0


def test_a_process_that_never_beats_is_replaced_after_the_startup_grace(
    supervisor: Supervisor,
) -> None:
    supervisor.slots = [Slot("silent", stand_in(SILENT))]
    thread, result = run_in_thread(supervisor)
    first = wait_until(lambda: supervisor.slots[0].pid is not None, 5, "a start")
    slot = supervisor.slots[0]
    wait_until(lambda: slot.restarts >= 1, 5, "the silent one to be replaced")
    assert slot.history[0].endswith("after missing its heartbeats"), (first, slot.history)
    assert stop(supervisor, thread, result) == 0


def test_a_crash_loop_stops_everything_and_exits_1(supervisor: Supervisor) -> None:
    supervisor.slots.append(Slot("crashing", stand_in(CRASHING)))
    healthy = supervisor.slots[0]
    thread, result = run_in_thread(supervisor)
    thread.join(20)  # restarts after 0 and 1 s, then the 3rd quick death ends it
    assert not thread.is_alive() and result == [1]
    assert supervisor.slots[2].history == ["exited with code 3"] * 3
    assert healthy.proc is not None and healthy.proc.poll() is not None  # stopped too


def test_health_endpoints_follow_the_processes(supervisor: Supervisor) -> None:
    port = free_port()
    server = serve_health(supervisor, "127.0.0.1", port)
    thread, result = run_in_thread(supervisor)
    try:
        def get(path: str) -> tuple[int, Any]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as err:
                body = err.read()
                return err.code, json.loads(body) if err.code != 404 else body

        wait_until(lambda: get("/readyz")[0] == 200, 10, "/readyz")
        status, body = get("/healthz")
        assert status == 200 and set(body["processes"]) == {"a", "b"}
        assert all(p["ready"] and p["up"] for p in body["processes"].values())
        pid = supervisor.slots[1].pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        wait_until(lambda: get("/readyz")[0] == 503, 5, "/readyz to fail")
        assert get("/healthz")[0] == 200  # the supervisor itself is fine: no restart
        wait_until(lambda: get("/readyz")[0] == 200, 10, "/readyz after the replacement")
        assert get("/nope")[0] == 404
    finally:
        assert stop(supervisor, thread, result) == 0
        server.shutdown()


RECORDING = (  # a stand-in worker process that finishes one job, then beats
    "import time\n"
    "from thumbnail_service.worker import metrics\n"
    "from thumbnail_service.worker.link import SupervisorLink\n"
    "link = SupervisorLink.from_environment()\n"
    "metrics.Attempt().succeeded()\n"
    "metrics.IN_PROGRESS.inc()\n"
    "for _ in range(600):\n"
    "    link.beat()\n"
    "    time.sleep(0.05)\n"
)


def test_metrics_sum_the_processes_and_count_restarts_by_cause(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    supervisor.metrics_dir = tmp_path
    supervisor.slots = [Slot("a", stand_in(RECORDING)), Slot("b", stand_in(RECORDING))]
    port = free_port()
    server = serve_health(supervisor, "127.0.0.1", port)
    thread, result = run_in_thread(supervisor)

    def scrape() -> Scrape:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            assert r.headers["Content-Type"].startswith("text/plain; version=")
            return Scrape(r.read().decode())

    def succeeded() -> float:
        return scrape().value(FINISHED, outcome="succeeded", reason="none")

    try:
        wait_until(lambda: ready(supervisor) and succeeded() == 2, 20, "both recorded")
        before = scrape()
        assert before.value("thumbnail_worker_jobs_in_progress") == 2
        assert before.value("thumbnail_worker_process_ready", process="a") == 1
        assert before.total("thumbnail_worker_process_restarts_total") == 0
        victim = supervisor.slots[0].pid
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: succeeded() == 3 and ready(supervisor), 20, "the replacement")
        after = scrape()
        assert before.went_backwards(after) == []
        assert after.value("thumbnail_worker_jobs_in_progress") == 2  # not 3: the dead one's
        assert after.value(RESTARTS, process="a", cause="killed") == 1
        assert after.value(RESTARTS, process="a", cause="hung") == 0
        assert after.value(RESTARTS, process="b", cause="killed") == 0

        hung = supervisor.slots[1].pid
        assert hung is not None
        os.kill(hung, signal.SIGSTOP)  # silent: killed by the supervisor, a "hung" restart
        wait_until(lambda: scrape().value(RESTARTS, process="b", cause="hung") == 1, 10,
                   "the hung one's restart")
    finally:
        assert stop(supervisor, thread, result) == 0
        server.shutdown()
    gauges = [f for f in tmp_path.iterdir() if f.name.startswith("gauge_livesum_")]
    assert gauges == [], "live gauges of stopped processes were left behind"


def test_sigterm_stops_every_process(supervisor: Supervisor) -> None:
    thread, result = run_in_thread(supervisor)
    wait_until(lambda: ready(supervisor), 10, "both stand-ins beating")
    procs = [s.proc for s in supervisor.slots]
    assert stop(supervisor, thread, result) == 0
    assert all(p is not None and p.poll() is not None for p in procs)


ORPHANER = (  # starts a grandchild that outlives it by a little: an orphan, then a zombie
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(0.3)'])\n"
    "time.sleep(0.1)\n"
)
AS_INIT = f"""
import os, sys, threading
from thumbnail_service.settings import Settings
from thumbnail_service.worker.supervisor import RestartPolicy, Slot, Supervisor
assert os.getpid() == 1
sup = Supervisor(Settings(worker_heartbeat_seconds=10),
                 RestartPolicy(max_quick_deaths=10**6, max_delay_seconds=0.2))
sup.slots = [Slot("orphaner", [sys.executable, "-c", {ORPHANER!r}])]
threading.Timer(4, lambda: sup.request_stop(15)).start()
sys.exit(sup.run())
"""


def state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


@pytest.mark.skipif(os.geteuid() != 0, reason="a PID namespace needs root")
def test_as_pid_1_it_reaps_the_orphans_it_inherits() -> None:
    """In a container the supervisor is PID 1: the render processes of a killed worker
    process become its children when they exit, and must not pile up as zombies."""
    from thumbnail_substrate.process_tree import children_of

    proc = subprocess.Popen(
        ["unshare", "--fork", "--pid", "--kill-child", sys.executable, "-c", AS_INIT]
    )
    try:
        time.sleep(3)  # about ten orphans have come and gone by now
        (init,) = children_of(proc.pid)
        zombies = [p for p in children_of(init) if state(p) == "Z"]
        assert len(zombies) <= 1, zombies  # at most one between two reaps
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
