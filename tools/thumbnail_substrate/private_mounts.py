"""The kubelets of a multi-node cluster each in a mount namespace of their own, where the host
paths upstream fixes show that node's own directories.

No flag moves two of them (kubelet 1.34): /var/lib/kubelet/device-plugins, where the device
manager keeps its checkpoint and on start deletes every socket it finds (a second kubelet
would delete the first one's registration socket and share its checkpoint), and
/var/log/containers (the log symlinks, which each kubelet garbage-collects). Everything the
kubelet has a setting for is moved by that setting instead (root-dir, cert-dir, podLogsDir,
volumePluginDir).

The kubelet's volume mounts (secrets, projected tokens, local volumes) must still reach
containerd and runc in the host's mount namespace: the kubelet's root directory becomes a
shared mount before the kubelet starts, so what the kubelet mounts below it propagates back,
while the binds over the fixed paths sit on a mount made a slave in the new namespace and so
never show on the host. They vanish with the namespace when the kubelet exits.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from thumbnail_substrate.binaries import system_binary
from thumbnail_substrate.netns import run_command

# Each fixed path and the name of the node's own directory shown there.
FIXED = {
    Path("/var/lib/kubelet"): "var-lib-kubelet",
    Path("/var/log/containers"): "var-log-containers",
}


def prepare(private_root: Path, kubelet_root: Path) -> None:
    """The node's private directories, the mount points (host paths that `HostState` restores)
    and the kubelet's root directory as a shared mount."""
    for target, name in FIXED.items():
        (private_root / name).mkdir(parents=True, exist_ok=True)
        target.mkdir(parents=True, exist_ok=True)
    kubelet_root.mkdir(parents=True, exist_ok=True)
    root = str(kubelet_root)
    run_command(["mount", "--bind", root, root], "the kubelet's root directory as a mount")
    run_command(["mount", "--make-shared", root], "sharing the kubelet's root directory")


def wrap(argv: list[str | Path], private_root: Path) -> list[str | Path]:
    """`argv` in a new mount namespace (propagation as on the host, so the shared root
    directory stays shared) with the node's directories over the fixed paths."""
    lines = ["set -e"]
    for target, name in FIXED.items():
        where = shlex.quote(str(target))
        # Whatever mount holds the target (the host's / here) stops sending mounts back.
        lines.append(f'mount --make-slave "$(findmnt -n -o TARGET -T {where})"')
        lines.append(f"mount --bind {shlex.quote(str(private_root / name))} {where}")
    lines.append('exec "$@"')
    unshare = system_binary("unshare", "util-linux")
    return [unshare, "--mount", "--propagation", "unchanged", "--",
            "sh", "-c", "\n".join(lines), "private-mounts", *argv]
