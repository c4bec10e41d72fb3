#!/usr/bin/env bash
# Re-resolve the lock (constraints.txt): install the project with every extra the tests need
# into a throwaway venv, without constraints (so the newest versions within pyproject.toml's
# ranges), and write what pip chose. Then run `make test` and commit both files.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "==> resolving '.[dev]' in a throwaway venv ($work)"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --upgrade pip
"$work/venv/bin/pip" install -q --progress-bar off '.[dev]'
header="$(sed -n '/^#/p' constraints.txt)"
{ printf '%s\n' "$header"; "$work/venv/bin/pip" freeze --exclude thumbnail-platform; } > constraints.txt.new
mv constraints.txt.new constraints.txt
echo "==> constraints.txt: $(grep -c '==' constraints.txt) pins; changes:"
git --no-pager diff --stat -- constraints.txt || true
