"""`thumbnail-substrate`: start components on loopback, print how to reach them, stop on Ctrl-C.

    thumbnail-substrate up                      # PostgreSQL, Redis, MinIO
    thumbnail-substrate up --kube               # plus the Kubernetes control plane
    thumbnail-substrate up --env-file .dev/substrate.env --then "thumbnail-api"

The env file holds the THUMBNAIL_* settings (and KUBECONFIG) so other processes can use them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import NoReturn

from thumbnail_substrate.component import Component
from thumbnail_substrate.errors import SubstrateError
from thumbnail_substrate.process import ManagedProcess, die_with_parent


def _components(kube: bool, services: bool) -> list[type[Component]]:
    from thumbnail_substrate.kube import KubeCluster
    from thumbnail_substrate.minio import MinioServer
    from thumbnail_substrate.postgres import PostgresServer
    from thumbnail_substrate.redis import RedisServer

    chosen: list[type[Component]] = [PostgresServer, RedisServer, MinioServer] if services else []
    return [*chosen, KubeCluster] if kube else chosen


def _raise_interrupt(signum: int, _frame: object) -> NoReturn:
    raise KeyboardInterrupt(signum)


def up(args: argparse.Namespace) -> int:
    # SIGTERM (e.g. from make or a supervisor) tears down like Ctrl-C does.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    # And so does the death of whoever started us (e.g. `make` killed by a timeout).
    die_with_parent(signal.SIGTERM)
    env: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        try:
            for cls in _components(args.kube, not args.kube_only):
                print(f"==> starting {cls.name} ...", flush=True)
                started = time.monotonic()
                component = stack.enter_context(cls())
                env.update(component.env())
                print(
                    f"    {cls.name} ready in {time.monotonic() - started:.1f}s "
                    f"(logs in {component.workdir})",
                    flush=True,
                )
        except SubstrateError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        if args.env_file:
            path = Path(args.env_file)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
            )
            print(f"==> settings written to {path} (source it in another shell)")
        if "KUBECONFIG" in env:
            print(f"==> kubectl --kubeconfig {env['KUBECONFIG']} get nodes")
        try:
            if args.then:
                print(f"==> running: {args.then}", flush=True)
                # Its own process group, stopped with everything else (API, worker, ...).
                then = ManagedProcess(
                    "then", [args.then], log=Path(os.devnull), env=env, shell=True,
                    stop_signal=signal.SIGINT,
                )
                stack.callback(then.stop, 30)
                then.start_attached()
                return then.wait()
            print("==> substrate up; press Ctrl-C to stop", flush=True)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("\n==> stopping ...", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="thumbnail-substrate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up", help="start components and wait for Ctrl-C")
    up_parser.add_argument(
        "--kube", action="store_true", help="also start the Kubernetes control plane"
    )
    up_parser.add_argument("--kube-only", action="store_true", help="start only the control plane")
    up_parser.add_argument("--env-file", help="write THUMBNAIL_* settings here")
    up_parser.add_argument("--then", help="run this shell command with the settings, then stop")
    args = parser.parse_args(argv)
    if args.kube_only:
        args.kube = True
    return up(args)


if __name__ == "__main__":
    sys.exit(main())
