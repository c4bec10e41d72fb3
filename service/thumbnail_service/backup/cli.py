"""`thumbnail-backup create|restore`: the commands the operator runs in pods.

Exit code 0 with a one-line JSON report on stdout and in THUMBNAIL_BACKUP_REPORT_PATH (the
termination message the operator reads), or 1 with `{"error": "..."}` there instead.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any, NoReturn

from pydantic import ValidationError

from ..logs import configure_logging
from ..settings import Settings
from . import report
from .errors import BackupError, describe
from .settings import BackupSettings

log = logging.getLogger("thumbnail_service.backup")
DEFAULT_REPORT_PATH = BackupSettings.model_fields["report_path"].default


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="thumbnail-backup",
        description="Back up a thumbnail service to S3, or restore one from a backup. "
        "Configured by THUMBNAIL_* (the service) and THUMBNAIL_BACKUP_* variables.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("create", help="back up the service's jobs and objects")
    commands.add_parser("restore", help="restore a backup into an empty service")
    command = parser.parse_args(argv).command

    # Before the settings parse, so that a broken configuration is reported like any failure.
    report_path = os.environ.get("THUMBNAIL_BACKUP_REPORT_PATH", DEFAULT_REPORT_PATH)
    try:
        settings = Settings()
        backup = BackupSettings()  # type: ignore[call-arg]  # id and bucket: from the env
    except ValidationError as exc:
        configure_logging("INFO")
        _fail(report_path, f"invalid configuration: {_explain(exc)}")
    configure_logging(settings.log_level)
    try:
        result = asyncio.run(_run(command, settings, backup))
    except Exception as exc:
        if not isinstance(exc, BackupError):  # unexpected: the traceback is worth having
            log.error("%s failed", command, exc_info=exc)
        _fail(backup.report_path, f"{command} failed: {describe(exc)}")
    text = report.render(result)
    print(text, flush=True)
    report.write(backup.report_path, text)


async def _run(command: str, settings: Settings, backup: BackupSettings) -> dict[str, Any]:
    if command == "create":
        from .create import create

        return await create(settings, backup)
    from .restore import restore

    return await restore(settings, backup)


def _fail(report_path: str, message: str) -> NoReturn:
    log.error("%s", message)
    report.write(report_path, report.error_report(message))
    sys.exit(1)


def _explain(exc: ValidationError) -> str:
    """`THUMBNAIL_BACKUP_ID: String should match pattern ...; ...`: the variables to fix."""
    prefix = "THUMBNAIL_BACKUP_" if exc.title == BackupSettings.__name__ else "THUMBNAIL_"
    return "; ".join(
        f"{prefix}{'_'.join(str(p) for p in error['loc']).upper()}: {error['msg']}"
        for error in exc.errors()
    )
