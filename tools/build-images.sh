#!/usr/bin/env bash
# Builds every container image the real-node tests run, on this machine, from local inputs
# only (Debian packages, PyPI wheels, pinned Go modules; never an upstream image), and caches
# them outside git keyed by a hash of their inputs: only the first run pays.
#
#   tools/build-images.sh                 build what is missing, export, write the index
#   tools/build-images.sh postgresql ...  only these components (the base as needed;
#                                         `base` alone builds just the base)
#   tools/build-images.sh --index         print the index path
#
# Output, in $THUMBNAIL_IMAGES_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/thumbnail-platform/images):
#   archives/<image>-<tag>.tar   `docker save` layout (buildah push docker-archive:), for
#                                `ctr -n k8s.io images import`
#   index.json                   {component: {ref, archive, inputs}}; read it with
#                                tools/thumbnail_substrate/images.py
#
# Images (local names only; the tag is the input hash, so a changed input is a new reference):
#   localhost/thumbnail-base-python:3.11-bookworm   debootstrap minbase + python3 (not exported)
#   server worker operator                          images/<c>/Dockerfile via scripts/build.sh
#   postgresql redis minio mc wait pause            images/<c>/Containerfile
#
# Needs root, buildah, debootstrap, go. THUMBNAIL_IMAGES_REBUILD=1 ignores the cache (e.g.
# to pick up new Debian security updates, which the input hash cannot see).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${THUMBNAIL_IMAGES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/thumbnail-platform/images}"
TOOLS_CACHE="${THUMBNAIL_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/thumbnail-platform/tools}"
INDEX="$CACHE/index.json"
SUITE=bookworm
BASE_REPO=localhost/thumbnail-base-python
BASE_TAG=3.11-bookworm
# Bump when the way images are assembled changes in a way the hashed files do not show.
RECIPE=1
ALL_COMPONENTS=(server worker operator postgresql redis minio mc wait pause)
BUILDAH_FLAGS=(--pull=never --network=host --isolation=chroot --ulimit nofile=1024:1024)
# Build steps that reach PyPI over HTTPS trust what this host trusts (egress here may pass a
# TLS-inspecting proxy whose CA only the host's bundle has): the host bundle is bind-mounted
# over the image's for RUN steps only, never committed. Set to "" to use the image's own.
CA_BUNDLE="${THUMBNAIL_BUILD_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}"

if [[ "${1:-}" == "--index" ]]; then echo "$INDEX"; exit 0; fi

die() { echo "error: $*" >&2; exit 1; }
step() { echo "==> $*"; }
note() { echo "    $*"; }

[[ "$(id -u)" == 0 ]] || die "building images with buildah/debootstrap needs root"
for tool in buildah go git python3 sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required but not in PATH (Debian: apt-get install ${tool/go/golang})"
done

COMPONENTS=("$@")
[[ ${#COMPONENTS[@]} -gt 0 ]] || COMPONENTS=("${ALL_COMPONENTS[@]}")
for c in "${COMPONENTS[@]}"; do
  [[ " base ${ALL_COMPONENTS[*]} " == *" $c "* ]] || die "unknown component '$c' (expected: ${ALL_COMPONENTS[*]})"
done

mkdir -p "$CACHE/archives" "$CACHE/work"
exec 9>"$CACHE/.lock"
flock -w 1800 9 || die "another tools/build-images.sh holds $CACHE/.lock (waited 30 min)"

# -- cleanup: containers and mounts this run made ------------------------------------------
CONTAINERS=()
MOUNT_ROOTS=()
cleanup() {
  local ctr root
  for ctr in "${CONTAINERS[@]}"; do buildah rm "$ctr" >/dev/null 2>&1 || true; done
  for root in "${MOUNT_ROOTS[@]}"; do
    findmnt -rn -o TARGET | awk -v r="$root" 'index($0, r) == 1' | sort -r | while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" || true
    done
  done
}
trap cleanup EXIT

# -- hashing -----------------------------------------------------------------------------
# `<sha256> <path>` of each file (content, never mtimes), relative to the repository.
hash_lines() {
  local f
  for f in "$@"; do
    [[ -f "$ROOT/$f" ]] || continue  # deleted but still in the index
    printf '%s %s\n' "$(sha256sum <"$ROOT/$f" | cut -d' ' -f1)" "$f"
  done
}
# Every file git knows or would add (tracked and untracked-not-ignored) under the paths.
tree_files() { git -C "$ROOT" ls-files --cached --others --exclude-standard -- "$@" | sort -u; }
digest() { sha256sum | cut -c1-16; }

image_exists() { buildah inspect --type image "$1" >/dev/null 2>&1; }
image_label() { buildah inspect --type image --format "{{index .OCIv1.Config.Labels \"$2\"}}" "$1" 2>/dev/null; }

# -- Debian mirrors: the ones apt already uses here ------------------------------------------
apt_uri() {  # apt_uri <suite>: the first URI of a deb822 or one-line source serving that suite
  local suite="$1" f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    awk -v s="$suite" '
      /^URIs:/ {u=$2} /^Suites:/ {for (i = 2; i <= NF; i++) if ($i == s) ok=1}
      /^[ \t]*$/ {if (ok && u && !done) {print u; done=1} u=""; ok=0}
      END {if (ok && u && !done) print u}' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] || continue
    awk -v s="$suite" '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i == s) {print ($2 ~ /^\[/ ? $3 : $2); next}}' "$f"
  done
}
MIRROR="${THUMBNAIL_DEBIAN_MIRROR:-$(apt_uri "$SUITE" | sed -n 1p)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${THUMBNAIL_DEBIAN_SECURITY_MIRROR:-$(apt_uri "$SUITE-security" | sed -n 1p)}"
SECURITY_MIRROR="${SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

# -- the base: debootstrap minbase + python3 -------------------------------------------------
PACKAGES="$(grep -v '^\s*#' "$ROOT/images/base/packages.txt" | xargs | tr ' ' ,)"

base_rootfs() {  # base_rootfs <dir>: a cleaned bookworm minbase with $PACKAGES
  local rootfs="$1"
  MOUNT_ROOTS+=("$rootfs")
  note "debootstrap --variant=minbase --include=$PACKAGES $SUITE from $MIRROR"
  # Per-package lines are summarised (one line per 40 packages); phases are shown as they come.
  if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR" 2>&1 |
    awk '/^I: (Retrieving|Validating|Extracting|Unpacking|Configuring) [^ ]+ [^ ]+$/ && !/\.\.\.$/ {
           n[$2]++; if (n[$2] % 40 == 0) printf "    %s: %d packages\n", tolower($2), n[$2]; fflush(); next }
         {print "    " $0; fflush()}'; then
    tail -n 20 "$rootfs/debootstrap/debootstrap.log" 2>/dev/null >&2 || true
    die "debootstrap failed (log above)"
  fi
  # apt for derived images: the same mirrors, updates and security, no recommends, no docs.
  rm -f "$rootfs/etc/apt/sources.list" "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  cat >"$rootfs/etc/apt/apt.conf.d/90thumbnail-image" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
EOF
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/90thumbnail-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  # Package installs in image builds must not try to start services.
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
  rm -rf "$rootfs/debootstrap" "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* \
    "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old "$rootfs"/var/log/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/lintian/*
  find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  [[ -x "$rootfs/usr/bin/python3" && -e "$rootfs/usr/bin/python" ]] || die "the base has no python3/python"
}

build_base() {
  local work="$CACHE/work/base" start=$SECONDS ctr python
  if [[ "${THUMBNAIL_IMAGES_REBUILD:-0}" != 1 ]] && image_exists "$BASE_REF" \
    && [[ "$(image_label "$BASE_REF" thumbnail.inputs)" == "$BASE_HASH" ]]; then
    step "base $BASE_REF: cached"
    buildah tag "$BASE_REF" "$BASE_REPO:$BASE_TAG"
    return
  fi
  step "base $BASE_REF: building (first run only; about a minute)"
  local replaced
  replaced="$(image_id "$BASE_REF")"
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap is required to build the base (Debian: apt-get install debootstrap)"
  rm -rf "$work" && mkdir -p "$work"
  base_rootfs "$work/rootfs"
  note "packing the root filesystem ($(du -sh "$work/rootfs" | cut -f1))"
  tar --numeric-owner --xattrs -C "$work/rootfs" -cf "$work/rootfs.tar" .
  rm -rf "$work/rootfs"
  ctr="$(buildah from --pull=never scratch)"
  CONTAINERS+=("$ctr")
  buildah add --quiet "$ctr" "$work/rootfs.tar" / >/dev/null
  rm -f "$work/rootfs.tar"
  note "applying $SUITE-updates and $SUITE-security"
  buildah run --isolation=chroot --network=host "$ctr" -- sh -c "$BASE_UPGRADE" 2>&1 | sed 's/^/    /'
  python="$(buildah run --isolation=chroot "$ctr" -- python3 -c 'import platform; print(platform.python_version())')"
  base_config "$ctr" "$python"
  note "committing"
  buildah commit --quiet --rm "$ctr" "$BASE_REF" >/dev/null
  CONTAINERS=("${CONTAINERS[@]/$ctr}")
  buildah tag "$BASE_REF" "$BASE_REPO:$BASE_TAG"
  drop_replaced "$replaced"
  rm -rf "$work"
  note "base built in $((SECONDS - start))s (Python $python, $(image_size "$BASE_REF"))"
  prune_tags "$BASE_REPO" "$BASE_TAG-$BASE_HASH" "$BASE_TAG"
}

# Point releases and security fixes after the release debootstrap installed.
BASE_UPGRADE='set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get -y -qq -o Dpkg::Use-Pty=0 upgrade >/tmp/upgrade.log || { cat /tmp/upgrade.log; exit 1; }
grep -E "^(Setting up|[0-9]+ upgraded)" /tmp/upgrade.log || true
apt-get clean
rm -rf /tmp/upgrade.log /var/lib/apt/lists/* /var/log/*'

base_config() {  # base_config <container> <python version>
  buildah config \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 \
    --cmd '["python3"]' \
    --label org.opencontainers.image.title=thumbnail-base-python \
    --label "org.opencontainers.image.description=Debian $SUITE minbase (debootstrap) with Python $2, built by tools/build-images.sh" \
    --label "org.opencontainers.image.version=$2" \
    --label "thumbnail.inputs=$BASE_HASH" \
    "$1"
}

# The base's inputs: the package list, the mirrors and what shapes its content (base_rootfs,
# BASE_UPGRADE, base_config); build_base only orchestrates, so its edits rebuild nothing.
BASE_HASH="$( { echo "recipe $RECIPE suite $SUITE mirror $MIRROR $SECURITY_MIRROR"; echo "$PACKAGES";
  declare -f base_rootfs base_config; echo "$BASE_UPGRADE"; } | digest)"
BASE_REF="$BASE_REPO:$BASE_TAG-$BASE_HASH"

image_id() { buildah inspect --type image --format '{{.FromImageID}}' "$1" 2>/dev/null || true; }
# drop_replaced <old image id>: after a rebuild moved its tags elsewhere, remove it (if nothing
# else names it), so rebuilds do not pile up untagged images.
drop_replaced() {
  [[ -n "$1" ]] || return 0
  if buildah images --filter dangling=true --format '{{.ID}}' --no-trunc 2>/dev/null | grep -q "$1"; then
    buildah rmi "$1" >/dev/null 2>&1 || true
  fi
}

image_size() { buildah images --format '{{.Size}}' "$1" 2>/dev/null | head -n1; }

# Drop other tags of a repository this script made (older input hashes).
prune_tags() {
  local repo="$1" tag
  shift
  buildah images --format '{{.Name}}:{{.Tag}}' 2>/dev/null | awk -v r="$repo" 'index($0, r ":") == 1' |
    while read -r ref; do
      tag="${ref##*:}"
      [[ " $* " == *" $tag "* || "$tag" == "<none>" ]] && continue
      [[ "$tag" =~ ^([0-9.]+-bookworm-)?[0-9a-f]{16}$ ]] || continue  # only hash tags
      note "pruning stale $ref"
      buildah rmi "$ref" >/dev/null 2>&1 || true
    done
}

# -- Go binaries: MinIO and mc share the tools cache of tools/build-tools.sh ------------------
# Same key and path as build-tools.sh's build(), so either script reuses the other's build.
tool_key() { (cat "$ROOT/tools/go/$1/go.mod" "$ROOT/tools/go/$1/go.sum"; echo "-s -w") | sha256sum | cut -c1-12; }
go_tool() {  # go_tool <module> <binary> <package>: prints the binary's path, building it if needed
  local module="$1" name="$2" pkg="$3" out start=$SECONDS
  out="$TOOLS_CACHE/$module-$(tool_key "$module")/$name"
  if [[ ! -x "$out" ]]; then
    step "$name: building $pkg from tools/go/$module (first run only; several minutes on 2 cores)" >&2
    mkdir -p "$(dirname "$out")"
    (cd "$ROOT/tools/go/$module" && GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w" -o "$out.tmp" "$pkg") >&2
    mv "$out.tmp" "$out"
    note "built in $((SECONDS - start))s" >&2
  fi
  echo "$out"
}

# -- components ----------------------------------------------------------------------------
repo_of() {
  case "$1" in
    server) echo localhost/thumbnail-service-server ;;
    worker) echo localhost/thumbnail-service-worker ;;
    operator) echo localhost/thumbnail-operator ;;
    *) echo "localhost/thumbnail-$1" ;;
  esac
}

inputs_of() {  # inputs_of <component>: the input hash
  local c="$1"
  {
    echo "recipe $RECIPE component $c"
    case "$c" in
      server | worker | operator)
        echo "base $BASE_HASH"
        local tree=service
        [[ "$c" == operator ]] && tree=operator
        hash_lines "images/$c/Dockerfile" constraints.txt pyproject.toml README.md \
          .dockerignore scripts/build.sh
        mapfile -t files < <(tree_files "$tree")
        hash_lines "${files[@]}"
        ;;
      pause)
        mapfile -t files < <(tree_files "images/$c")
        hash_lines "${files[@]}"
        go version
        ;;
      *)
        echo "base $BASE_HASH"
        mapfile -t files < <(tree_files "images/$c")
        hash_lines "${files[@]}"
        case "$c" in minio | mc) echo "tool $(tool_key "$c")" ;; esac
        ;;
    esac
  } | digest
}

build_project_image() {  # server | worker | operator, through scripts/build.sh
  # No --layers: buildah 1.28 then serves an unchanged builder stage from its layer cache and
  # `RUN --mount=type=bind,from=builder` finds nothing to mount ("couldn't find .../wheels on
  # host to bind mount"), so every build runs its builder stage afresh (about 15 s here).
  local c="$1" tag="$2" inputs="$3" extra="--label thumbnail.inputs=$3"
  [[ -z "$CA_BUNDLE" || ! -f "$CA_BUNDLE" ]] \
    || extra+=" --volume $CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro"
  BUILDER=buildah PYTHON_IMAGE="$BASE_REF" IMAGE_TAG="$tag" COMPONENTS="$c" \
    BUILDAH_BUILD_ARGS="$extra" \
    "$ROOT/scripts/build.sh" 2>&1 | sed 's/^/    /'
}

build_dependency_image() {  # images/<c>/Containerfile, context = a copy of images/<c>/ + binaries
  local c="$1" ref="$2" inputs="$3" ctx="$CACHE/work/context-$1" f
  rm -rf "$ctx" && mkdir -p "$ctx"
  while read -r f; do
    [[ -f "$ROOT/$f" ]] && cp -p "$ROOT/$f" "$ctx/${f#images/"$c"/}"
  done < <(tree_files "images/$c")
  case "$c" in
    minio) ln -f "$(go_tool minio minio github.com/minio/minio)" "$ctx/minio" 2>/dev/null \
             || cp "$(go_tool minio minio github.com/minio/minio)" "$ctx/minio" ;;
    mc) ln -f "$(go_tool mc mc github.com/minio/mc)" "$ctx/mc" 2>/dev/null \
          || cp "$(go_tool mc mc github.com/minio/mc)" "$ctx/mc" ;;
    pause)
      note "go build images/pause (static, CGO_ENABLED=0)"
      (cd "$ROOT/images/pause" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w" -o "$ctx/pause" .)
      ;;
  esac
  buildah bud "${BUILDAH_FLAGS[@]}" --layers=false \
    --build-arg "BASE_IMAGE=$BASE_REF" \
    --label "thumbnail.inputs=$inputs" \
    --file "$ctx/Containerfile" --tag "$ref" "$ctx" 2>&1 | sed 's/^/    /'
  rm -rf "$ctx"
}

declare -A REF=() ARCHIVE=() INPUTS=()
component() {
  local c="$1" repo tag ref inputs archive start=$SECONDS
  repo="$(repo_of "$c")"
  inputs="$(inputs_of "$c")"
  tag="$inputs"
  ref="$repo:$tag"
  archive="$CACHE/archives/${repo#localhost/}-$tag.tar"
  REF[$c]="$ref" ARCHIVE[$c]="$archive" INPUTS[$c]="$inputs"
  if [[ "${THUMBNAIL_IMAGES_REBUILD:-0}" != 1 && -s "$archive" ]]; then
    step "$c $ref: cached ($(du -h "$archive" | cut -f1) archive)"
    return
  fi
  if [[ "${THUMBNAIL_IMAGES_REBUILD:-0}" != 1 ]] && image_exists "$ref" \
    && [[ "$(image_label "$ref" thumbnail.inputs)" == "$inputs" ]]; then
    step "$c $ref: image cached, exporting"
  else
    [[ "$c" == pause ]] || build_base_once
    start=$SECONDS  # the base's own time is reported by build_base
    step "$c $ref: building"
    local replaced
    replaced="$(image_id "$ref")"
    case "$c" in
      server | worker | operator) build_project_image "$c" "$tag" "$inputs" ;;
      *) build_dependency_image "$c" "$ref" "$inputs" ;;
    esac
    image_exists "$ref" || die "$c: the build did not produce $ref"
    drop_replaced "$replaced"
  fi
  note "exporting to $archive"
  rm -f "$archive.tmp"
  buildah push --quiet "$ref" "docker-archive:$archive.tmp:$ref" >/dev/null
  mv "$archive.tmp" "$archive"
  local stale
  for stale in "$CACHE/archives/${repo#localhost/}"-*.tar; do
    [[ "$stale" == "$archive" || ! -e "$stale" ]] || { note "pruning stale $stale"; rm -f "$stale"; }
  done
  prune_tags "$repo" "$tag"
  step "$c $ref: done in $((SECONDS - start))s (image $(image_size "$ref"), archive $(du -h "$archive" | cut -f1))"
}

BASE_READY=0
build_base_once() { [[ $BASE_READY == 1 ]] || { build_base; BASE_READY=1; }; }

write_index() {
  local c args=()
  for c in "${ALL_COMPONENTS[@]}"; do
    if [[ -z "${REF[$c]:-}" ]]; then  # not asked for this run: keep it if its archive is current
      local inputs repo
      repo="$(repo_of "$c")"; inputs="$(inputs_of "$c")"
      [[ -s "$CACHE/archives/${repo#localhost/}-$inputs.tar" ]] || continue
      REF[$c]="$repo:$inputs" ARCHIVE[$c]="$CACHE/archives/${repo#localhost/}-$inputs.tar" INPUTS[$c]="$inputs"
    fi
    args+=("$c" "${REF[$c]}" "${ARCHIVE[$c]}" "${INPUTS[$c]}")
  done
  python3 - "$INDEX" "${args[@]}" <<'EOF'
import json, os, sys
path, rest = sys.argv[1], sys.argv[2:]
index = {rest[i]: {"ref": rest[i + 1], "archive": rest[i + 2], "inputs": rest[i + 3]}
         for i in range(0, len(rest), 4)}
with open(path + ".tmp", "w") as out:
    json.dump(index, out, indent=2, sort_keys=True)
    out.write("\n")
os.replace(path + ".tmp", path)
EOF
}

TOTAL=$SECONDS
step "images: ${COMPONENTS[*]} (cache $CACHE, builder buildah $(buildah --version | awk '{print $3}'))"
for c in "${COMPONENTS[@]}"; do
  if [[ "$c" == base ]]; then build_base_once; else component "$c"; fi
done
write_index
step "index $INDEX: ${#REF[@]} images, $(du -sh "$CACHE/archives" | cut -f1) of archives, ${#COMPONENTS[@]} checked in $((SECONDS - TOTAL))s"
