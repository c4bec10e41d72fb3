#!/usr/bin/env bash
# Build the container images: thumbnail-service-server, thumbnail-service-worker and
# thumbnail-operator (images/<component>/Dockerfile, context = repository root).
#
# Environment:
#   IMAGE_TAG   tag to build                        (default: latest; the version tag is added too)
#   REGISTRY    prefix, e.g. ghcr.io/acme           (default: none, local images)
#   COMPONENTS  which images                        (default: "server worker operator")
#   PUSH=1      push after building (needs REGISTRY and a `docker login`)
#   DOCKER_BUILD_ARGS  extra flags for `docker build`, e.g. "--platform linux/arm64 --no-cache"
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "error: $*" >&2; exit 1; }
step() { echo "==> $*"; }

command -v docker >/dev/null 2>&1 \
  || die "docker is required to build the images but was not found in PATH (https://docs.docker.com/get-docker/)"
docker info >/dev/null 2>&1 \
  || die "the Docker daemon is not reachable ('docker info' failed): start Docker and retry"

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
for component in $COMPONENTS; do
  name="${prefix}$(image_name "$component")"
  step "building ${name}:${IMAGE_TAG} (version ${VERSION}, revision ${REVISION}) from images/${component}/Dockerfile"
  # shellcheck disable=SC2086 # DOCKER_BUILD_ARGS is a list of flags
  DOCKER_BUILDKIT=1 docker build \
    --file "images/${component}/Dockerfile" \
    --tag "${name}:${IMAGE_TAG}" \
    --tag "${name}:${VERSION}" \
    --build-arg "VERSION=${VERSION}" \
    --build-arg "REVISION=${REVISION}" \
    --build-arg "SOURCE=${SOURCE}" \
    --build-arg "CREATED=${CREATED}" \
    ${DOCKER_BUILD_ARGS:-} \
    .
  if [ "${PUSH:-0}" = 1 ]; then
    [ -n "$REGISTRY" ] || die "PUSH=1 needs REGISTRY (e.g. REGISTRY=ghcr.io/acme)"
    step "pushing ${name}:${IMAGE_TAG} and ${name}:${VERSION}"
    docker push "${name}:${IMAGE_TAG}"
    docker push "${name}:${VERSION}"
  fi
done
step "built: $(for c in $COMPONENTS; do printf '%s ' "${prefix}$(image_name "$c"):${IMAGE_TAG}"; done)"
