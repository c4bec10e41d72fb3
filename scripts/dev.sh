#!/usr/bin/env bash
# `make dev`: PostgreSQL, Redis and MinIO on loopback (thumbnail-substrate), then migrations, the
# buckets, a worker and the API. Prints the URL and ready-to-paste curl commands; Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .dev
exec .venv/bin/thumbnail-substrate up --env-file .dev/substrate.env --then scripts/dev-stack.sh
