"""`python -m thumbnail_operator.install [--check] [--root DIR]` (`make manifests`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from thumbnail_operator.install.files import stale, write

ROOT = Path(__file__).resolve().parents[3]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m thumbnail_operator.install",
        description="Write manifests/, charts/thumbnail-operator/ and operator/rbac.yaml from "
                    "operator/thumbnail_operator/install/ and crds/.")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 listing the files that are out of date")
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="the repository (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.check:
        outdated = stale(args.root)
        for path in outdated:
            print(f"out of date: {path}", file=sys.stderr)
        if outdated:
            print("run `make manifests` and commit the result", file=sys.stderr)
        return 1 if outdated else 0
    for path in write(args.root):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
