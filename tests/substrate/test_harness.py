"""The harness itself: clear one-line errors and no orphan processes."""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path

import pytest

from thumbnail_substrate import SubstrateError
from thumbnail_substrate.binaries import go_tool
from thumbnail_substrate.process_tree import children_of, wait_all_gone
from thumbnail_substrate.redis import RedisServer


def test_missing_binary_says_what_to_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("THUMBNAIL_TOOLS_BIN", str(tmp_path))
    with pytest.raises(SubstrateError, match=r"kwok not found in .*: run `make tools`"):
        go_tool("kwok")


def test_port_clash_is_one_clear_line() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(SubstrateError) as info, RedisServer(port=port):
            pass  # `with` closes it (its work directory too) when start() fails
    message = str(info.value)
    assert f"127.0.0.1:{port} is already in use" in message
    assert "\n" not in message


def test_stop_leaves_no_process_behind() -> None:
    with RedisServer() as server:
        pid = server.processes[0].pid
        assert pid is not None
        os.kill(pid, 0)  # alive
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.parametrize("how", ["interrupt", "sigkill"])
def test_cli_never_leaves_orphans(how: str, tmp_path: Path) -> None:
    """Ctrl-C tears down cleanly; even SIGKILL of the CLI takes its servers down (pdeathsig)."""
    import signal
    import subprocess
    import sys
    import time

    env_file = tmp_path / "substrate.env"
    workdirs: list[Path] = []
    cli = subprocess.Popen(
        [sys.executable, "-m", "thumbnail_substrate.cli", "up", "--env-file", str(env_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not env_file.exists() and time.monotonic() < deadline and cli.poll() is None:
            time.sleep(0.2)
        assert env_file.exists(), cli.stdout.read() if cli.stdout else ""
        assert "THUMBNAIL_S3_ENDPOINT" in env_file.read_text()
        servers = children_of(cli.pid)
        assert len(servers) == 3  # postgres, redis-server, minio
        cli.send_signal(signal.SIGINT if how == "interrupt" else signal.SIGKILL)
        cli.wait(30)
        alive = wait_all_gone(servers, timeout=15)
        assert alive == set()
        # Their work directories, as the CLI printed them ("logs in DIR").
        printed = cli.stdout.read() if cli.stdout else ""
        workdirs = [Path(d) for d in re.findall(r"logs in (\S+)\)", printed)]
        assert len(workdirs) == 3, printed
        if how == "interrupt":
            assert not [d for d in workdirs if d.exists()]  # Ctrl-C removes them too
    finally:
        if cli.poll() is None:
            cli.kill()
        if how == "sigkill":  # nothing can clean up after a SIGKILL: the test does
            for workdir in workdirs:
                shutil.rmtree(workdir, ignore_errors=True)
