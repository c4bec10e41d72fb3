"""What the real cluster leaves outside its processes, and how it goes: the nodes' cgroup
roots, shims and containers reparented to init, mounts, namespaces; and the cleaning of a
run that was killed before its teardown, from the state file it wrote first.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from thumbnail_substrate.host_state import (
    CGROUP_ROOT,
    HostState,
    mounts,
    processes_mentioning,
    remove_cgroup_tree,
)
from thumbnail_substrate.netns import delete_quietly, namespaces


def _log(message: str) -> None:
    print(f"    [node] {message}", flush=True)


def make_cgroup_root(path: str) -> None:
    """The kubelet's cgroupRoot (`/a` or `/a/b`) must exist in every v1 hierarchy; cpuset
    needs its cpus and mems filled in at every level before anything can join."""
    for hierarchy in CGROUP_ROOT.iterdir():
        if hierarchy.is_symlink() or hierarchy.name == "unified" or not hierarchy.is_dir():
            continue
        parent = hierarchy
        for part in Path(path.strip("/")).parts:
            target = parent / part
            target.mkdir(exist_ok=True)
            if hierarchy.name == "cpuset":
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    (target / knob).write_text((parent / knob).read_text())
            parent = target


def teardown_leftovers(workdir: Path, netns_names: Iterable[str], cgroup_name: str) -> None:
    """What survives stopping the nodes' processes: shims and containers (reparented to
    init), mounts under the work directory, CNI's per-pod namespaces, the nodes' namespaces
    and cgroups."""
    # Shims name their containerd's socket, under each node's directory (node, node-2, ...).
    socket_dirs = [str(d / "containerd") for d in sorted(workdir.glob("node*")) if d.is_dir()]
    for _ in range(3):
        pids = {pid for socket_dir in socket_dirs for pid in processes_mentioning(socket_dir)}
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        if not pids:
            break
        time.sleep(0.5)
    _kill_cgroup_tasks(cgroup_name)
    for mount_point in sorted(
        (m for m in mounts() if m.startswith(str(workdir)) or m.startswith("/run/netns/cni-")),
        key=len, reverse=True,
    ):
        subprocess.run(["umount", "-l", mount_point], capture_output=True, check=False)
    for cni_ns in [n for n in namespaces() if n.startswith("cni-")]:
        delete_quietly(cni_ns)
    for name in netns_names:
        delete_quietly(name)
    remove_cgroup_tree(cgroup_name)


def _kill_cgroup_tasks(cgroup_name: str) -> None:
    """Container processes left in the nodes' cgroups (their shim gone) get SIGKILL."""
    top = CGROUP_ROOT / "pids" / cgroup_name
    if not top.is_dir():
        return
    for _ in range(5):
        pids = {
            int(line)
            for procs in top.rglob("cgroup.procs")
            for line in procs.read_text().split()
        }
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        time.sleep(0.5)


def write_state(state_file: Path, workdir: Path, netns_names: list[str], cgroup_name: str,
                before: HostState) -> None:
    """Written before anything starts, so a killed run can be cleaned by the next one."""
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(
        json.dumps(
            {
                "workdir": str(workdir),
                "netns": netns_names[0],
                "namespaces": netns_names,
                "cgroup": cgroup_name,
                "sysctls": before.sysctls,
                "existing_paths": sorted(str(p) for p in before.existing_paths),
            }
        )
    )


def clean_stale(state_file: Path) -> bool:
    """Tear down what a killed run left (from its state file); True if there was one."""
    if not state_file.exists():
        return False
    state = json.loads(state_file.read_text())
    _log(f"cleaning up a node left behind by an earlier run ({state['workdir']})")
    # Files written before multi-node clusters name only their one namespace.
    netns_names = state.get("namespaces", [state["netns"]])
    teardown_leftovers(Path(state["workdir"]), netns_names, state["cgroup"])
    before = HostState(
        sysctls=state["sysctls"],
        existing_paths={Path(p) for p in state["existing_paths"]},
        netns=set(), mounts=[], iptables="",
    )
    before.restore(state["cgroup"])
    shutil.rmtree(state["workdir"], ignore_errors=True)
    state_file.unlink(missing_ok=True)
    return True
