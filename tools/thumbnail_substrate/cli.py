"""`thumbnail-substrate`: start components on loopback, print how to reach them, stop on Ctrl-C.

    thumbnail-substrate up                      # PostgreSQL, Redis, MinIO
    thumbnail-substrate up --kube               # plus the Kubernetes control plane
    thumbnail-substrate up --env-file .dev/substrate.env --then "thumbnail-api"
    thumbnail-substrate node                    # a real node + the operator + the sample
    thumbnail-substrate node-clean              # remove what a killed `node` left behind

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


def node(args: argparse.Namespace) -> int:
    """A real node with the operator and the documented sample on real pods (make dev-node)."""
    import tempfile

    from thumbnail_substrate.deploy import apply_sample, install_operator
    from thumbnail_substrate.images import local_images
    from thumbnail_substrate.node import RealCluster

    signal.signal(signal.SIGTERM, _raise_interrupt)
    die_with_parent(signal.SIGTERM)
    try:
        images = local_images()
        print("==> starting the real node (containerd, kubelet, kube-proxy, CoreDNS, "
              "kube-router) ...")
        with RealCluster(images=images, nodes=args.nodes) as cluster, \
                tempfile.TemporaryDirectory() as tmp:
            refs = {name: image.ref for name, image in images.items()}
            kubeconfig = cluster.kubeconfig
            print(f"==> kubectl --kubeconfig {kubeconfig} get nodes,pods -A", flush=True)
            if not args.no_sample:
                print("==> installing the operator (kubectl apply -k manifests/) ...", flush=True)
                install_operator(kubeconfig, refs["operator"], Path(tmp), timeout=600)
                print("==> applying manifests/samples/thumbnailservice-full.yaml ...", flush=True)
                body = apply_sample(kubeconfig, refs, namespace="default", timeout=600)
                name = body["metadata"]["name"]
                api = cluster.node_port_url(30000)
                print(f"==> {name} is Ready; API (NodePort 30000) at {api}, MinIO console "
                      f"(NodePort 30001) at {cluster.node_port_url(30001)}")
                print(
                    f"    KEY=$(kubectl --kubeconfig {kubeconfig} get secret "
                    f"{name}-credentials -o jsonpath='{{.data.THUMBNAIL_API_KEYS}}' "
                    "| base64 -d | cut -d, -f1)\n"
                    f'    curl -s -H "X-API-Key: $KEY" -F file=@tests/data/sample.jpg '
                    f"{api}/v1/jobs"
                )
            if args.env_file:
                path = Path(args.env_file)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"export KUBECONFIG={kubeconfig}\n")
                print(f"==> settings written to {path} (source it in another shell)")
            print("==> real node up; press Ctrl-C to stop", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                print("\n==> stopping (pods, containerd, namespace) ...", flush=True)
    except (SubstrateError, AssertionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def node_clean(_args: argparse.Namespace) -> int:
    from thumbnail_substrate.node import clean_left_behind

    found = clean_left_behind()
    print("==> cleaned up a node left behind" if found else "==> nothing left behind")
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
    node_parser = sub.add_parser("node", help="a real node with the operator and the sample")
    node_parser.add_argument("--no-sample", action="store_true", help="only the node")
    node_parser.add_argument("--env-file", help="write KUBECONFIG here")
    node_parser.add_argument(
        "--nodes", type=int, default=1,
        help="real nodes (the first also runs the control plane; default 1)",
    )
    sub.add_parser("node-clean", help="remove what a killed `node` run left behind")
    args = parser.parse_args(argv)
    if args.command == "node":
        return node(args)
    if args.command == "node-clean":
        return node_clean(args)
    if args.kube_only:
        args.kube = True
    return up(args)


if __name__ == "__main__":
    sys.exit(main())
