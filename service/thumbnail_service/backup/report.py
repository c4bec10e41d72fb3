"""The outcome as one JSON line: on stdout, and in the pod's termination message.

Kubernetes keeps at most 4096 bytes of /dev/termination-log, so the JSON is made to fit
(the list of pruned ids is shortened first) rather than being cut mid-token.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
LIMIT = 4096


def _dump(report: dict[str, Any]) -> str:
    return json.dumps(report, separators=(",", ":"), ensure_ascii=False)


def render(report: dict[str, Any], limit: int = LIMIT) -> str:
    text = _dump(report)
    pruned = list(report.get("pruned", ()))
    kept = len(pruned)
    while len(text.encode()) >= limit and kept > 0:
        kept -= 1
        text = _dump({**report, "pruned": pruned[:kept], "prunedOmitted": len(pruned) - kept})
    if len(text.encode()) >= limit:  # only an absurdly long error message gets here
        text = _dump({"error": str(report.get("error", text))[: limit // 2] + "..."})
    return text


def error_report(message: str) -> str:
    return render({"error": " ".join(message.split())})  # one line


def write(path: str, text: str) -> None:
    """Best effort: no directory (not in a pod) means nobody reads it; a failure to write it
    must not turn a finished backup into a failed one."""
    target = Path(path)
    if not target.parent.is_dir():
        return
    try:
        target.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        log.warning("cannot write the report to %s: %s", path, exc)
