#!/usr/bin/env bash
# Build the container images: thumbnail-service-server, thumbnail-service-worker and
# thumbnail-operator (images/<component>/Dockerfile, context = repository root).
#
# Environment:
#   IMAGE_TAG   tag to build                        (default: latest; the version tag is added too)
#   REGISTRY    prefix, e.g. ghcr.io/acme           (default: none, local images)
#   COMPONENTS  which images                        (default: "server worker operator")
#   PUSH=1      push after building (needs REGISTRY and a `docker login`, or buildah's login)
#   DOCKER_BUILD_ARGS  extra flags for `docker build`, e.g. "--platform linux/arm64 --no-cache"
#   BUILDER     docker | buildah | auto             (default: auto, see below)
#   PYTHON_IMAGE  base image build arg              (default: the Dockerfiles' ARG, the official
#                                                    python:3.11.14-slim-bookworm)
#   BUILDAH_BUILD_ARGS extra flags for `buildah bud`, e.g. "--volume /ca.crt:/etc/ssl/certs/ca-certificates.crt:ro"
#                      (not "--layers": buildah 1.28 then fails the `RUN --mount=...,from=builder`
#                      of a cached builder stage, "couldn't find .../wheels on host to bind mount")
#
# auto: docker when its daemon answers; else buildah when it is installed and PYTHON_IMAGE is
# in its local storage (buildah builds never pull: on a machine without a registry the base is
# local, e.g. localhost/thumbnail-base-python:3.11-bookworm from tools/build-images.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "error: $*" >&2; exit 1; }
step() { echo "==> $*"; }

DEFAULT_PYTHON_IMAGE="$(sed -n 's/^ARG PYTHON_IMAGE=//p' images/server/Dockerfile | head -n1)"
PYTHON_IMAGE="${PYTHON_IMAGE:-}"
BUILDER="${BUILDER:-auto}"
buildah_has_base() {
  command -v buildah >/dev/null 2>&1 \
    && buildah inspect --type image "${PYTHON_IMAGE:-$DEFAULT_PYTHON_IMAGE}" >/dev/null 2>&1
}
BUILDAH_HINT="or build with buildah from a local base: PYTHON_IMAGE=<image in buildah's storage> (tools/build-images.sh makes one)"
case "$BUILDER" in
  auto)
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
      BUILDER=docker
      step "builder: docker (its daemon answers)"
    elif buildah_has_base; then
      BUILDER=buildah
      step "builder: buildah ($(command -v docker >/dev/null 2>&1 && echo "the Docker daemon is not reachable" || echo "no docker in PATH"); base ${PYTHON_IMAGE:-$DEFAULT_PYTHON_IMAGE} is local)"
    elif ! command -v docker >/dev/null 2>&1; then
      die "docker is required to build the images but was not found in PATH (https://docs.docker.com/get-docker/); $BUILDAH_HINT"
    else
      die "the Docker daemon is not reachable ('docker info' failed): start Docker and retry; $BUILDAH_HINT"
    fi
    ;;
  docker)
    command -v docker >/dev/null 2>&1 \
      || die "docker is required to build the images but was not found in PATH (https://docs.docker.com/get-docker/)"
    docker info >/dev/null 2>&1 \
      || die "the Docker daemon is not reachable ('docker info' failed): start Docker and retry"
    step "builder: docker"
    ;;
  buildah)
    command -v buildah >/dev/null 2>&1 || die "buildah is required for BUILDER=buildah but was not found in PATH (Debian: apt-get install buildah)"
    buildah_has_base || die "base image ${PYTHON_IMAGE:-$DEFAULT_PYTHON_IMAGE} is not in buildah's local storage (buildah builds here never pull): run tools/build-images.sh or pass PYTHON_IMAGE=<local image>"
    step "builder: buildah"
    ;;
  *) die "BUILDER must be docker, buildah or auto (got '$BUILDER')" ;;
esac

IMAGE_TAG="${IMAGE_TAG:-latest}"
REGISTRY="${REGISTRY:-}"
COMPONENTS="${COMPONENTS:-server worker operator}"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n1)"
[ -n "$VERSION" ] || die "could not read the version from pyproject.toml"
REVISION="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain -- service operator images pyproject.toml 2>/dev/null)" ]; then
  REVISION="${REVISION}-dirty"
fi
SOURCE="${SOURCE_URL:-$(git config --get remote.origin.url 2>/dev/null || echo https://github.com/thumbnail-platform/thumbnail-platform)}"
CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

image_name() {
  case "$1" in
    server) echo thumbnail-service-server ;;
    worker) echo thumbnail-service-worker ;;
    operator) echo thumbnail-operator ;;
    *) die "unknown component '$1' (expected server, worker or operator)" ;;
  esac
}

prefix="${REGISTRY:+${REGISTRY%/}/}"
base_args=()
[ -z "$PYTHON_IMAGE" ] || base_args=(--build-arg "PYTHON_IMAGE=${PYTHON_IMAGE}")
for component in $COMPONENTS; do
  name="${prefix}$(image_name "$component")"
  step "building ${name}:${IMAGE_TAG} (version ${VERSION}, revision ${REVISION}) from images/${component}/Dockerfile with ${BUILDER}"
  # The same Dockerfile, tags and labels whichever builder runs.
  common=(
    --file "images/${component}/Dockerfile"
    --tag "${name}:${IMAGE_TAG}"
    --tag "${name}:${VERSION}"
    --build-arg "VERSION=${VERSION}"
    --build-arg "REVISION=${REVISION}"
    --build-arg "SOURCE=${SOURCE}"
    --build-arg "CREATED=${CREATED}"
    ${base_args[@]+"${base_args[@]}"}
  )
  if [ "$BUILDER" = docker ]; then
    # shellcheck disable=SC2086 # DOCKER_BUILD_ARGS is a list of flags
    DOCKER_BUILDKIT=1 docker build "${common[@]}" ${DOCKER_BUILD_ARGS:-} .
  else
    # No pulls (the base is local); host network (no CNI here); chroot isolation and a nofile
    # limit within the sandbox's hard limit (buildah's default 1048576 is refused).
    # shellcheck disable=SC2086 # BUILDAH_BUILD_ARGS is a list of flags
    buildah bud --pull=never --network=host --isolation=chroot --ulimit nofile=1024:1024 \
      "${common[@]}" ${BUILDAH_BUILD_ARGS:-} .
  fi
  if [ "${PUSH:-0}" = 1 ]; then
    [ -n "$REGISTRY" ] || die "PUSH=1 needs REGISTRY (e.g. REGISTRY=ghcr.io/acme)"
    step "pushing ${name}:${IMAGE_TAG} and ${name}:${VERSION}"
    "$BUILDER" push "${name}:${IMAGE_TAG}"
    "$BUILDER" push "${name}:${VERSION}"
  fi
done
step "built with ${BUILDER}: $(for c in $COMPONENTS; do printf '%s ' "${prefix}$(image_name "$c"):${IMAGE_TAG}"; done)"
