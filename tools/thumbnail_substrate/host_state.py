"""The host state a real node can change, captured so teardown restores it and a test can
prove nothing was left behind (processes, mounts, cgroups, namespaces, sysctls, paths).

The kubelet sets three global sysctls no matter what, and upstream hard-codes a few paths
(shared/reference/real-node.md lists them); everything else the node writes stays in its
work directory and its network namespace.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from thumbnail_substrate.netns import NETNS_DIR, namespaces

CGROUP_ROOT = Path("/sys/fs/cgroup")
# Global (not per network namespace) sysctls the kubelet sets on start.
KUBELET_SYSCTLS = ("kernel.panic", "kernel.panic_on_oops", "vm.overcommit_memory")
# Paths upstream creates whatever its configuration says.
FIXED_PATHS = (
    Path("/var/lib/kubelet"),
    Path("/var/log/containers"),
    Path("/var/log/pods"),
    Path("/usr/libexec/kubernetes"),
    Path("/var/lib/cni"),
    Path("/run/containerd"),
    # containerd's defaults for NRI and its opt plugin (`node_config` moves both).
    Path("/run/nri"),
    Path("/opt/containerd"),
)


def read_sysctl(key: str) -> str:
    return Path("/proc/sys", *key.split(".")).read_text().strip()


def write_sysctl(key: str, value: str) -> None:
    Path("/proc/sys", *key.split(".")).write_text(value)


def mounts() -> list[str]:
    """Mount points of our mount namespace (the node shares it with the host)."""
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [line.split()[4] for line in lines]


def cgroup_dirs(name: str) -> list[Path]:
    """`/sys/fs/cgroup/<controller>/<name>` directories that exist now (cgroup v1)."""
    return [d / name for d in CGROUP_ROOT.iterdir() if (d / name).is_dir()]


def remove_cgroup_tree(name: str) -> None:
    """rmdir every cgroup under `name`, deepest first (a cgroup with tasks stays and is
    reported by the leak check)."""
    for top in cgroup_dirs(name):
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def processes() -> dict[int, str]:
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").strip()
                if cmd:
                    found[int(entry.name)] = cmd.decode(errors="replace")
    return found


def processes_mentioning(text: str) -> list[int]:
    return [pid for pid, cmd in processes().items() if text in cmd and pid != os.getpid()]


def host_iptables() -> str:
    """iptables-save of the host's namespace without counters and comments."""
    if not shutil.which("iptables-save"):
        return ""
    proc = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False)
    return "\n".join(
        line for line in proc.stdout.splitlines() if not line.startswith(("#", ":"))
    )


def host_ipsets() -> set[str]:
    """Names of the host namespace's ipsets (kube-router makes its own inside the node's)."""
    if not shutil.which("ipset"):
        return set()
    proc = subprocess.run(["ipset", "list", "-n"], capture_output=True, text=True, check=False)
    return set(proc.stdout.split())


@dataclass
class HostState:
    sysctls: dict[str, str]
    existing_paths: set[Path]
    netns: set[str]
    mounts: list[str]
    iptables: str
    cgroups: set[Path] = field(default_factory=set)
    ipsets: set[str] = field(default_factory=set)

    @classmethod
    def capture(cls, cgroup_name: str) -> HostState:
        return cls(
            sysctls={key: read_sysctl(key) for key in KUBELET_SYSCTLS},
            existing_paths={p for p in FIXED_PATHS if p.exists()},
            netns=namespaces(),
            mounts=mounts(),
            iptables=host_iptables(),
            cgroups=set(cgroup_dirs(cgroup_name)),
            ipsets=host_ipsets(),
        )

    def restore(self, cgroup_name: str) -> None:
        """Undo what the node changed outside its work directory (idempotent)."""
        # `ip netns add` bind-mounts /run/netns on first use; undo that once it is empty.
        if str(NETNS_DIR) not in self.mounts and str(NETNS_DIR) in mounts() and not namespaces():
            subprocess.run(["umount", str(NETNS_DIR)], capture_output=True, check=False)
        for key, value in self.sysctls.items():
            if read_sysctl(key) != value:
                write_sysctl(key, value)
        remove_cgroup_tree(cgroup_name)
        for path in FIXED_PATHS:
            if path not in self.existing_paths and path.exists():
                shutil.rmtree(path, ignore_errors=True)

    def differences(self, other: HostState) -> list[str]:
        """What differs in `other` (taken later), one line each; empty when equal."""
        found = [
            f"sysctl {k}: {v} -> {other.sysctls.get(k)}"
            for k, v in self.sysctls.items()
            if other.sysctls.get(k) != v
        ]
        found += [f"new path {p}" for p in sorted(other.existing_paths - self.existing_paths)]
        found += [f"new network namespace {n}" for n in sorted(other.netns - self.netns)]
        found += [f"new mount {m}" for m in other.mounts if m not in self.mounts]
        found += [f"new cgroup {c}" for c in sorted(other.cgroups - self.cgroups)]
        found += [f"new ipset {s}" for s in sorted(other.ipsets - self.ipsets)]
        if other.iptables != self.iptables:
            found.append("host iptables rules changed")
        return found
