#!/bin/sh
# Entrypoint of localhost/thumbnail-postgresql: what the official postgres image's entrypoint
# does for the settings the operator uses, then `exec postgres "$@"` in the foreground.
#
#   POSTGRES_PASSWORD  required on first start: the password of POSTGRES_USER
#   POSTGRES_USER      superuser to create                 (default: postgres)
#   POSTGRES_DB        database to create                  (default: POSTGRES_USER)
#   PGDATA             data directory                      (default: /var/lib/postgresql/data)
#   POSTGRES_INITDB_ARGS  extra initdb flags
#
# First start (no PGDATA/PG_VERSION): initdb with scram-sha-256 for every TCP connection
# (trust only on the Unix socket, which is private to the container as in the official image),
# listen on all addresses, create the database through a socket-only temporary server.
# Every start (first or later): POSTGRES_USER's password is set to POSTGRES_PASSWORD in
# single-user mode before the server listens, so the environment (the operator's credentials
# Secret) is the source of truth: rotating the password is editing the Secret, and the
# operator restarts this pod (docs/operator.md, "Credentials"). Arguments are postgres
# flags, e.g. `-c shared_buffers=64MB`.
set -eu

PGDATA="${PGDATA:-/var/lib/postgresql/data}"
export PGDATA
log() { echo "thumbnail-postgresql: $*"; }
die() { echo "thumbnail-postgresql: error: $*" >&2; exit 1; }

[ "${1:-}" != postgres ] || shift
case "${1:-}" in
  --version | -V) exec postgres --version ;;
esac

[ "$(id -u)" != 0 ] || die "refusing to run as root: run as the postgres user (UID 999)"
id -un >/dev/null 2>&1 \
  || die "UID $(id -u) has no passwd entry (initdb needs one): run as UID 999"

# Every start: the directory must be 0700 (a volume's fsGroup handling adds group bits, which
# postgres refuses).
mkdir -p "$PGDATA"
chmod 0700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  [ -n "${POSTGRES_PASSWORD:-}" ] \
    || die "the database is uninitialised and POSTGRES_PASSWORD is not set (it is required)"
  user="${POSTGRES_USER:-postgres}"
  db="${POSTGRES_DB:-$user}"
  log "initialising $PGDATA (superuser $user, database $db)"
  pwfile="$(mktemp)"
  trap 'rm -f "$pwfile"' EXIT
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of flags
  initdb --pgdata="$PGDATA" --username="$user" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 \
    ${POSTGRES_INITDB_ARGS:-} >/dev/null
  rm -f "$pwfile"
  trap - EXIT
  # jit = off: the image carries no LLVM.
  printf "\n# thumbnail-postgresql\nlisten_addresses = '*'\npassword_encryption = 'scram-sha-256'\njit = off\n" \
    >>"$PGDATA/postgresql.conf"
  printf '\n# thumbnail-postgresql: every address, password required\nhost all all all scram-sha-256\n' \
    >>"$PGDATA/pg_hba.conf"
  if [ "$db" != postgres ]; then
    pg_ctl --pgdata="$PGDATA" --wait --timeout=60 --silent \
      -o "-c listen_addresses='' -p 5432" start >/dev/null
    psql --no-psqlrc --quiet --username="$user" --dbname=postgres -p 5432 \
      --set=ON_ERROR_STOP=1 --set=db="$db" <<'SQL'
SELECT format('CREATE DATABASE %I', :'db')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SQL
    pg_ctl --pgdata="$PGDATA" --wait --timeout=60 --silent --mode=fast stop
  fi
  log "initialised"
fi

if [ -n "${POSTGRES_PASSWORD:-}" ]; then
  user="${POSTGRES_USER:-postgres}"
  role="$(printf '%s' "$user" | sed 's/"/""/g')"
  password="$(printf '%s' "$POSTGRES_PASSWORD" | sed "s/'/''/g")"
  out="$(mktemp)"
  trap 'rm -f "$out"' EXIT
  # The statement goes through stdin (not argv, not the log: log_min_error_statement=panic);
  # -j ends it at ";" and an empty line, so any password text is taken whole.
  printf 'ALTER ROLE "%s" PASSWORD '"'"'%s'"'"';\n\n' "$role" "$password" \
    | postgres --single -j -D "$PGDATA" -c log_min_messages=warning \
        -c log_min_error_statement=panic postgres >"$out" 2>&1 \
    || { cat "$out" >&2; die "could not start in single-user mode to set the password"; }
  if grep -q 'ERROR:' "$out"; then
    grep 'ERROR:' "$out" >&2
    die "could not set the password of $user"
  fi
  rm -f "$out"
  trap - EXIT
  log "password of $user set from POSTGRES_PASSWORD"
fi

log "starting postgres"

exec postgres "$@"
