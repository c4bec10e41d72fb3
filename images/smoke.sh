#!/usr/bin/env bash
# Smoke-checks the images of tools/build-images.sh without a cluster: each runs under runc the
# way the operator's pods run it (its UID/GID, read-only root filesystem, no capabilities,
# no-new-privileges, emptyDirs as tmpfs, the PVC as a host directory) in a private network
# namespace (loopback only), and answers what its probes or users ask.
#
#   images/smoke.sh                 every image in the index
#   images/smoke.sh postgresql ...  only these
#
# Needs root, buildah, runc, ip. Leaves nothing behind: containers are deleted, buildah
# mounts released, the network namespace removed (trap on exit). Every wait is bounded.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INDEX="$("$ROOT/tools/build-images.sh" --index)"
[[ -f "$INDEX" ]] || { echo "error: no image index at $INDEX: run \`make images\`" >&2; exit 1; }
for tool in buildah runc ip python3; do
  command -v "$tool" >/dev/null || { echo "error: $tool is required" >&2; exit 1; }
done

step() { echo "==> $*"; }
ok() { echo "    ok: $*"; }
fail() { echo "    FAIL: $*" >&2; FAILED+=("$CURRENT: $*"); }

WORK="$(mktemp -d /tmp/thumbnail-smoke.XXXXXX)"
STATE="$WORK/runc"   # runc state of this run only
NETNS="thumbnail-smoke-$$"
BUILDAH_CTRS=()
RUNC_IDS=()
declare -A PIDS=()
FAILED=()
CURRENT=""

cleanup() {
  local id ctr
  for id in "${RUNC_IDS[@]}"; do
    runc --root "$STATE" kill "$id" KILL >/dev/null 2>&1 || true
    runc --root "$STATE" delete --force "$id" >/dev/null 2>&1 || true
  done
  for ctr in "${BUILDAH_CTRS[@]}"; do
    buildah umount "$ctr" >/dev/null 2>&1 || true
    buildah rm "$ctr" >/dev/null 2>&1 || true
  done
  ip netns del "$NETNS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$NETNS"
ip -n "$NETNS" link set lo up

ref_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]["ref"])' "$INDEX" "$1"; }

# rootfs <ref>: mount the image (a fresh buildah container); the path is in $ROOTFS.
rootfs() {
  local ctr
  ctr="$(buildah from --pull=never "$1")"
  BUILDAH_CTRS+=("$ctr")
  ROOTFS="$(buildah mount "$ctr")"
}

# bundle <name> <ref> <uid> <json mounts> <json env> [argv...]: an OCI bundle under $WORK/<name>
# whose process is the image's entrypoint + cmd, or argv when given ("--" replaces the
# entrypoint, like a pod's command).
bundle() {
  local name="$1" ref="$2" uid="$3" mounts="$4" env="$5"
  shift 5
  local dir="$WORK/$name" root config
  mkdir -p "$dir"
  rootfs "$ref"
  root="$ROOTFS"
  config="$(buildah inspect --type image "$ref")"
  python3 - "$dir" "$root" "$uid" "$mounts" "$env" "/run/netns/$NETNS" "$config" "$@" <<'EOF'
import json, sys
out, root, uid, mounts, env, netns, image = sys.argv[1:8]
argv = sys.argv[8:]
image = json.loads(image)["OCIv1"]["config"]
entry, cmd = image.get("Entrypoint") or [], image.get("Cmd") or []
if argv and argv[0] == "--":
    args = argv[1:]
else:
    args = entry + (argv or cmd)
environment = dict(e.split("=", 1) for e in image.get("Env") or [])
environment.update(json.loads(env))
spec = {
    "ociVersion": "1.0.2",
    "process": {
        "terminal": False,
        "user": {"uid": int(uid), "gid": int(uid), "additionalGids": [int(uid)]},
        "args": args,
        "env": [f"{k}={v}" for k, v in environment.items()],
        "cwd": image.get("WorkingDir") or "/",
        "capabilities": {k: [] for k in ("bounding", "effective", "inheritable", "permitted", "ambient")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": root, "readonly": True},
    "hostname": "smoke",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        *json.loads(mounts),
    ],
    "linux": {
        "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
        + [{"type": "network", "path": netns}],
        "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
}
json.dump(spec, open(f"{out}/config.json", "w"), indent=1)
EOF
}

tmpfs() {  # tmpfs <path> <uid>: an emptyDir (fsGroup = uid)
  printf '{"destination": "%s", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=2775", "uid=%s", "gid=%s", "size=262144k"]}' "$1" "$2" "$2"
}
hostdir() {  # hostdir <path> <host dir>: a PVC
  printf '{"destination": "%s", "type": "bind", "source": "%s", "options": ["rbind", "rw"]}' "$1" "$2"
}

# start <name>: run the bundle in the background (log in $WORK/<name>.log).
start() {
  RUNC_IDS+=("smoke-$$-$1")
  runc --root "$STATE" run --bundle "$WORK/$1" "smoke-$$-$1" >"$WORK/$1.log" 2>&1 </dev/null &
  PIDS[$1]=$!
}
# run <name>: run the bundle to completion (at most 60 s), print its output, return its status.
run() {
  RUNC_IDS+=("smoke-$$-$1")
  local rc=0
  timeout 60 runc --root "$STATE" run --bundle "$WORK/$1" "smoke-$$-$1" </dev/null 2>&1 || rc=$?
  runc --root "$STATE" delete --force "smoke-$$-$1" >/dev/null 2>&1 || true
  return $rc
}
in_ctr() {  # in_ctr <name> <uid> argv...: exec in a running container
  local name="$1" uid="$2"
  shift 2
  timeout 20 runc --root "$STATE" exec --user "$uid:$uid" "smoke-$$-$name" "$@" 2>&1
}
# stop <name> <signal>: signal, wait at most 30 s; the exit status is in $RC.
stop() {
  local name="$1" sig="$2" pid t=0
  pid="${PIDS[$name]}"
  RC=0
  runc --root "$STATE" kill "smoke-$$-$name" "$sig" >/dev/null 2>&1 || true
  while kill -0 "$pid" 2>/dev/null && ((t < 300)); do sleep 0.1; t=$((t + 1)); done
  if kill -0 "$pid" 2>/dev/null; then
    echo "    (no exit 30 s after SIG$sig: killing)"
    runc --root "$STATE" kill "smoke-$$-$name" KILL >/dev/null 2>&1 || true
  fi
  wait "$pid" || RC=$?
  runc --root "$STATE" delete --force "smoke-$$-$name" >/dev/null 2>&1 || true
}
until_ok() {  # until_ok <seconds> argv...: retry every 0.5 s
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

check_python() {  # server | worker | operator
  local c="$1" ref entry out rc
  ref="$(ref_of "$c")"
  entry="$(buildah inspect --type image --format '{{index .OCIv1.Config.Entrypoint 0}}' "$ref")"
  case "$c" in
    server)  # serves its liveness endpoint (no dependency calls) on 0.0.0.0:8000
      bundle "$c" "$ref" 10001 "[$(tmpfs /tmp 10001)]" '{}'
      start "$c"
      local get='import urllib.request as u; print(u.urlopen("http://127.0.0.1:8000/healthz", timeout=2).read().decode())'
      if until_ok 30 in_ctr "$c" 10001 python -c "$get"; then
        ok "$entry: GET /healthz -> $(in_ctr "$c" 10001 python -c "$get")"
      else
        fail "$entry: /healthz not answering in 30 s: $(tail -n 10 "$WORK/$c.log")"
      fi
      stop "$c" TERM; rc=$RC
      [[ "$rc" == 0 ]] && ok "SIGTERM: exit 0" || fail "exit $rc on SIGTERM"
      ;;
    worker)  # boots its Dramatiq worker processes (the broker is absent: they retry)
      bundle "$c" "$ref" 10001 "[$(tmpfs /tmp 10001)]" '{}'
      start "$c"
      if until_ok 30 grep -q "Worker process is ready for action" "$WORK/$c.log"; then
        ok "$entry: worker process ready for action"
      else
        fail "$entry: not ready in 30 s: $(tail -n 10 "$WORK/$c.log")"
      fi
      stop "$c" TERM; rc=$RC
      [[ "$rc" == 0 ]] && ok "SIGTERM: exit 0" || fail "exit $rc on SIGTERM"
      ;;
    operator)
      bundle "$c" "$ref" 10001 "[$(tmpfs /tmp 10001)]" '{}' --help
      if out="$(run "$c")" && [[ "$out" == *usage:* ]]; then ok "$entry --help: $(head -n1 <<<"$out")"; else fail "$entry --help: $out"; fi
      ;;
  esac
  local probe='import sys, thumbnail_'"$([[ $c == operator ]] && echo operator || echo service)"'; print("python", sys.version.split()[0], "venv", sys.prefix)'
  [[ "$c" == worker ]] && probe+='; import pyvips; print("libvips %d.%d.%d" % tuple(pyvips.version(i) for i in range(3)))'
  # No pip anywhere; every module byte-compiled at install (the root is read-only at run time).
  probe+='; import importlib.util as iu; print("pip:", "absent" if iu.find_spec("pip") is None else "PRESENT")'
  probe+='; import pathlib; py = [p for p in pathlib.Path(sys.prefix).rglob("*.py")]'
  probe+='; missing = [p for p in py if not (p.parent / "__pycache__" / (p.stem + ".cpython-311.pyc")).exists()]'
  probe+='; print(len(py), "modules,", len(missing), "without .pyc", [str(m) for m in missing[:3]])'
  bundle "$c-py" "$ref" 10001 "[$(tmpfs /tmp 10001)]" '{}' -- python -c "$probe"
  if out="$(run "$c-py")"; then
    ok "$(tr '\n' ' ' <<<"$out")"
    [[ "$out" == *"pip: absent"*" 0 without .pyc"* ]] || fail "pip present or modules not byte-compiled"
  else
    fail "python in $c: $out"
  fi
}

check_postgresql() {
  local ref data rc
  ref="$(ref_of postgresql)"
  data="$WORK/pgvolume"
  mkdir -p "$data" && chown 999:999 "$data" && chmod 2775 "$data"  # what fsGroup makes of a PVC
  local env='{"POSTGRES_DB": "thumbnails", "POSTGRES_USER": "thumbnail", "POSTGRES_PASSWORD": "s3cret pass", "PGDATA": "/var/lib/postgresql/data/pgdata"}'
  local mounts
  mounts="[$(hostdir /var/lib/postgresql/data "$data"), $(tmpfs /var/run/postgresql 999), $(tmpfs /tmp 999)]"
  local round
  for round in first restart; do
    bundle "pg-$round" "$ref" 999 "$mounts" "$env"
    local t0=$SECONDS
    start "pg-$round"
    if until_ok 60 in_ctr "pg-$round" 999 pg_isready -h 127.0.0.1 -U thumbnail -d thumbnails; then
      ok "$round start: pg_isready -h 127.0.0.1 -U thumbnail -d thumbnails after $((SECONDS - t0))s"
    else
      fail "$round start: not ready in 60 s: $(tail -n 20 "$WORK/pg-$round.log")"
    fi
    local q
    q="$(in_ctr "pg-$round" 999 env PGPASSWORD="s3cret pass" psql -h 127.0.0.1 -U thumbnail -d thumbnails -Atc \
      "select current_database(), current_user, (select rolsuper from pg_roles where rolname = current_user), current_setting('listen_addresses'), current_setting('jit'), (select count(*) from pg_hba_file_rules where auth_method = 'scram-sha-256')" || true)"
    [[ "$q" == "thumbnails|thumbnail|t|*|off|"* ]] && ok "TCP login with the password: $q" || fail "TCP login: $q"
    q="$(in_ctr "pg-$round" 999 env PGPASSWORD=wrong psql -h 127.0.0.1 -U thumbnail -d thumbnails -Atc 'select 1' || true)"
    [[ "$q" == *"password authentication failed"* ]] && ok "a wrong password is refused" || fail "wrong password: $q"
    if [[ "$round" == first ]]; then
      in_ctr "pg-$round" 999 env PGPASSWORD="s3cret pass" psql -h 127.0.0.1 -U thumbnail -d thumbnails -qc 'create table kept (x int); insert into kept values (42)' >/dev/null
    else
      q="$(in_ctr "pg-$round" 999 env PGPASSWORD="s3cret pass" psql -h 127.0.0.1 -U thumbnail -d thumbnails -Atc 'select x from kept' || true)"
      [[ "$q" == 42 ]] && ok "data survived the restart" || fail "after restart: $q"
      grep -q "initialising" "$WORK/pg-$round.log" && fail "re-initialised on restart" || ok "restart did not re-initialise"
    fi
    stop "pg-$round" INT; rc=$RC
    [[ "$rc" == 0 ]] && ok "SIGINT (the image's STOPSIGNAL): exit 0" || fail "exit $rc on SIGINT: $(tail -n 5 "$WORK/pg-$round.log")"
    # What the kubelet's fsGroup handling does to a volume on the next mount: group rw,
    # setgid directories (postgres refuses a group-writable data directory).
    chmod -R g+rwX "$data" && find "$data" -type d -exec chmod g+s {} +
  done
  grep -h "thumbnail-postgresql:" "$WORK"/pg-*.log | sed 's/^/    log: /'
}

check_redis() {
  local ref rc out
  ref="$(ref_of redis)"
  bundle redis "$ref" 999 "[$(tmpfs /data 999)]" '{}' --requirepass s3cret --save "" --appendonly no
  start redis
  if until_ok 20 in_ctr redis 999 redis-cli -a s3cret --no-auth-warning ping; then
    ok "redis-cli -a ... ping: $(in_ctr redis 999 redis-cli -a s3cret --no-auth-warning ping)"
  else
    fail "redis not answering: $(tail -n 10 "$WORK/redis.log")"
  fi
  out="$(in_ctr redis 999 redis-cli ping || true)"
  [[ "$out" == *NOAUTH* ]] && ok "without the password: $out" || fail "no password: $out"
  ok "$(in_ctr redis 999 redis-cli -a s3cret --no-auth-warning config get save | tr '\n' ' ')"
  stop redis TERM; rc=$RC
  [[ "$rc" == 0 ]] && ok "SIGTERM: exit 0" || fail "exit $rc on SIGTERM"
}

check_minio_and_mc() {
  local ref mcref data rc out
  ref="$(ref_of minio)" mcref="$(ref_of mc)"
  data="$WORK/minio-volume"
  mkdir -p "$data" && chown 1000:1000 "$data"
  bundle minio "$ref" 1000 "[$(hostdir /data "$data"), $(tmpfs /tmp 1000)]" \
    '{"MINIO_ROOT_USER": "smokeaccess", "MINIO_ROOT_PASSWORD": "smokesecret123", "HOME": "/tmp"}' \
    server /data --address :9000 --console-address :9001
  start minio
  # The bucket-init Job's script (operator builders/buckets.py), in the mc image.
  local script='until mc alias set target "$S3_ENDPOINT_URL" "$THUMBNAIL_S3_ACCESS_KEY" "$THUMBNAIL_S3_SECRET_KEY" >/dev/null; do echo waiting for object storage; sleep 2; done && mc mb --ignore-existing target/originals && mc mb --ignore-existing target/thumbnails && mc mb --ignore-existing target/thumbnails && mc ls target && mc --version | head -n1'
  bundle mc "$mcref" 1000 "[$(tmpfs /tmp 1000)]" \
    '{"S3_ENDPOINT_URL": "http://127.0.0.1:9000", "MC_CONFIG_DIR": "/tmp/.mc", "THUMBNAIL_S3_ACCESS_KEY": "smokeaccess", "THUMBNAIL_S3_SECRET_KEY": "smokesecret123"}' \
    -- sh -c "$script"
  if out="$(run mc)"; then
    ok "bucket-init script against minio: $(grep -v waiting <<<"$out" | tr '\n' ' ' | tr -s ' ')"
  else
    fail "bucket-init script: $out / minio: $(tail -n 10 "$WORK/minio.log")"
  fi
  [[ -d "$data/originals" && -d "$data/thumbnails" ]] && ok "buckets on the volume" || fail "no buckets in $data"
  ok "$(grep -m1 -i "version" "$WORK/minio.log" || head -n1 "$WORK/minio.log")"
  stop minio TERM; rc=$RC
  [[ "$rc" == 0 ]] && ok "minio SIGTERM: exit 0" || fail "minio exit $rc on SIGTERM"
}

check_wait() {
  local ref out
  ref="$(ref_of wait)"
  bundle wait "$ref" 10001 "[$(tmpfs /tmp 10001)]" '{}' -- sh -c \
    'nc -l 127.0.0.1 7000 & sleep 0.5; nc -z -w 2 127.0.0.1 7000 && echo "open port: reachable"; nc -z -w 2 127.0.0.1 7001 || echo "closed port: refused"'
  out="$(run wait)"
  [[ "$out" == *"reachable"*"refused"* ]] && ok "$(tr '\n' ' ' <<<"$out")" || fail "nc: $out"
}

check_pause() {
  local ref rc t0 state
  ref="$(ref_of pause)"
  bundle pause "$ref" 65535 '[]' '{}'
  start pause
  sleep 1
  state="$(runc --root "$STATE" state "smoke-$$-pause" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' || true)"
  [[ "$state" == running ]] && ok "running after 1 s" || fail "state $state: $(cat "$WORK/pause.log")"
  t0=$(date +%s%N)
  stop pause TERM; rc=$RC
  [[ "$rc" == 0 ]] && ok "SIGTERM: exit 0 in $((($(date +%s%N) - t0) / 1000000)) ms" || fail "exit $rc on SIGTERM"
}

COMPONENTS=("$@")
[[ ${#COMPONENTS[@]} -gt 0 ]] || COMPONENTS=(server worker operator postgresql redis minio wait pause)
for c in "${COMPONENTS[@]}"; do
  CURRENT="$c"
  step "$c ($(ref_of "$c"))"
  case "$c" in
    server | worker | operator) check_python "$c" ;;
    postgresql) check_postgresql ;;
    redis) check_redis ;;
    minio | mc) check_minio_and_mc ;;
    wait) check_wait ;;
    pause) check_pause ;;
    *) fail "unknown component" ;;
  esac
done
if [[ ${#FAILED[@]} -gt 0 ]]; then
  step "FAILED: ${#FAILED[@]}"
  printf '    %s\n' "${FAILED[@]}" >&2
  exit 1
fi
step "all smoke checks passed"
