"""A ThumbnailBackup's status from its Job and pods (controller/backups.py, the pure part)."""

from __future__ import annotations

import json
from typing import Any

from thumbnail_operator.api.backup import Phase, human_size
from thumbnail_operator.api.v1 import BackupDestination
from thumbnail_operator.controller.backups import backup_status, observe_job

REPORT = {"id": "b1", "jobs": 3, "thumbnails": 9, "objects": 12, "bytes": 3 * 1024 * 1024,
          "skipped": 1, "startedAt": "2026-12-07T03:00:01Z", "finishedAt": "2026-12-07T03:00:09Z",
          "pruned": ["b0"]}


def job(condition: str | None = None, active: int = 0) -> dict[str, Any]:
    status: dict[str, Any] = {"startTime": "2026-12-07T03:00:00Z", "active": active}
    if condition:
        status["conditions"] = [{"type": condition, "status": "True", "reason": "BackoffLimit"
                                 "Exceeded", "message": "Job has reached the backoff limit"}]
    return {"status": status}


def pod(phase: str, message: str, created: str = "2026-12-07T03:00:00Z") -> dict[str, Any]:
    return {"metadata": {"creationTimestamp": created}, "status": {
        "phase": phase, "containerStatuses": [{"name": "backup", "state": {
            "terminated": {"message": message}}}]}}


def test_a_completed_job_reports_the_tools_counts() -> None:
    observed = observe_job(job("Complete"), [pod("Succeeded", json.dumps(REPORT))])
    assert observed.phase is Phase.COMPLETED
    status = backup_status(observed, {}, generation=1, job_name="b1-backup",
                           where="s3://x/b1/", destination=BackupDestination(),
                           now="2026-12-07T03:00:10Z")
    assert status["phase"] == "Completed"
    assert (status["jobs"], status["objects"], status["skipped"]) == (3, 12, 1)
    assert status["size"] == "3.0 MiB"
    assert (status["startedAt"], status["finishedAt"]) == (REPORT["startedAt"],
                                                           REPORT["finishedAt"])
    assert status["conditions"][0]["status"] == "True"
    assert status["destination"] == {"bucket": "backups", "prefix": ""}


def test_a_failed_job_reports_the_tools_error_of_the_last_attempt() -> None:
    pods = [pod("Failed", json.dumps({"error": "first"}), "2026-12-07T03:00:00Z"),
            pod("Failed", json.dumps({"error": "cannot reach vault:9000"}),
                "2026-12-07T03:00:30Z")]
    observed = observe_job(job("Failed"), list(reversed(pods)))
    assert observed.phase is Phase.FAILED
    assert observed.message == "BackoffLimitExceeded: cannot reach vault:9000"
    status = backup_status(observed, {}, generation=1, job_name="j", where="w",
                           destination=BackupDestination(), now="t")
    assert status["conditions"][0]["reason"] == "BackupFailed"
    assert status["conditions"][0]["status"] == "False"
    assert "jobs" not in status and status["finishedAt"] == "t"


def test_a_crash_without_a_report_shows_the_log_tail() -> None:
    observed = observe_job(job("Failed"), [pod("Failed", "Traceback ...\nOSError: boom")])
    assert observed.message.endswith("OSError: boom")


def test_running_and_pending() -> None:
    assert observe_job(None, []).phase is Phase.PENDING
    assert observe_job(job(active=1), []).phase is Phase.RUNNING
    assert observe_job(job(), []).phase is Phase.PENDING


def test_the_transition_time_moves_only_on_a_change() -> None:
    running = observe_job(job(active=1), [])
    first = backup_status(running, {}, generation=1, job_name="j", where="w",
                          destination=BackupDestination(), now="t1")
    again = backup_status(running, first, generation=1, job_name="j", where="w",
                          destination=BackupDestination(), now="t2")
    assert again["conditions"][0]["lastTransitionTime"] == "t1"


def test_human_size() -> None:
    assert [human_size(n) for n in (0, 1023, 1536, 5 * 1024**3)] == [
        "0 B", "1023 B", "1.5 KiB", "5.0 GiB"]
