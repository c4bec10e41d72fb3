#!/usr/bin/env bash
# Runs inside `thumbnail-substrate up --then`, with the THUMBNAIL_* connection settings exported.
set -euo pipefail
BIN=.venv/bin
export THUMBNAIL_HOST=127.0.0.1
export THUMBNAIL_PORT="${THUMBNAIL_PORT:-8000}"
if (exec 3<>"/dev/tcp/127.0.0.1/$THUMBNAIL_PORT") 2>/dev/null; then
  THUMBNAIL_PORT="$($BIN/python -c 'from thumbnail_substrate.process import free_port; print(free_port())')"
  echo "==> port 8000 is busy; the API uses $THUMBNAIL_PORT"
fi
export THUMBNAIL_API_KEYS="${THUMBNAIL_API_KEYS:-dev-$($BIN/python -c 'import secrets; print(secrets.token_urlsafe(12))')}"
export THUMBNAIL_SWEEP_INTERVAL_SECONDS="${THUMBNAIL_SWEEP_INTERVAL_SECONDS:-10}"
# The web console (docs/console.md) is off by default; a developer wants it.
export THUMBNAIL_CONSOLE_ENABLED="${THUMBNAIL_CONSOLE_ENABLED:-true}"
echo "export THUMBNAIL_API_KEYS=$THUMBNAIL_API_KEYS THUMBNAIL_PORT=$THUMBNAIL_PORT" >> .dev/substrate.env

echo "==> migrating the database and creating the buckets"
$BIN/thumbnail-migrate
echo "==> starting a worker (its processes log to .dev/worker.log; restarts are reported here)"
# thumbnail-worker replaces a worker process that dies or hangs, and says so on stderr (this
# console). Should the whole worker stop (killed, or a crash loop it gave up on), start it
# again, backing off up to 30 s while it keeps failing fast.
(
  pid=""
  trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; exit 0' TERM INT
  delay=1
  while :; do
    started=$SECONDS
    $BIN/thumbnail-worker >> .dev/worker.log &
    pid=$!
    wait "$pid" && code=0 || code=$?
    [ $((SECONDS - started)) -lt 60 ] || delay=1
    if [ "$code" -gt 128 ]; then why="killed by SIG$(kill -l $((code - 128)))"; else why="exit code $code"; fi
    echo "==> the worker stopped ($why); restarting it in ${delay}s (log: .dev/worker.log)" >&2
    sleep "$delay" & wait $!
    delay=$((delay < 16 ? delay * 2 : 30))
  done
) &
WORKER=$!
trap 'kill $WORKER 2>/dev/null; wait $WORKER 2>/dev/null' EXIT
URL="http://127.0.0.1:$THUMBNAIL_PORT"
case "${THUMBNAIL_CONSOLE_ENABLED,,}" in  # what pydantic reads as true
  1 | true | t | yes | y | on) CONSOLE_LINE="==> Console at $URL/console   (API key: $THUMBNAIL_API_KEYS)" ;;
  *) CONSOLE_LINE="==> Console off (THUMBNAIL_CONSOLE_ENABLED=$THUMBNAIL_CONSOLE_ENABLED)" ;;
esac
(
  for _ in $(seq 1 150); do
    if curl -fsS "$URL/healthz/detailed" >/dev/null 2>&1; then
      cat <<MSG

==> API ready at $URL   (docs: $URL/docs, health: $URL/healthz/detailed, metrics: $URL/metrics)
$CONSOLE_LINE
Submit an image:
  curl -sS -H 'X-API-Key: $THUMBNAIL_API_KEYS' -F file=@tests/data/sample.jpg -F sizes=small,medium $URL/v1/jobs
Read the result (use the id printed above):
  curl -sS -H 'X-API-Key: $THUMBNAIL_API_KEYS' $URL/v1/jobs/<id>
Ctrl-C stops everything.
MSG
      exit 0
    fi
    sleep 0.2
  done
  echo "error: the API did not become healthy; see the output above" >&2
) &
echo "==> starting the API"
$BIN/thumbnail-api
