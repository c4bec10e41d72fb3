#!/usr/bin/env bash
# Load the locally built images into every node of a Kind cluster (no registry needed).
#
# Environment:
#   KIND_CLUSTER_NAME  the Kind cluster          (default: thumbnail-platform)
#   IMAGE_TAG          tag to load               (default: latest)
#   COMPONENTS         which images              (default: "server worker operator")
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "error: $*" >&2; exit 1; }
step() { echo "==> $*"; }

command -v docker >/dev/null 2>&1 \
  || die "docker is required to load images but was not found in PATH (https://docs.docker.com/get-docker/)"
command -v kind >/dev/null 2>&1 \
  || die "kind is required to load images but was not found in PATH (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
docker info >/dev/null 2>&1 \
  || die "the Docker daemon is not reachable ('docker info' failed): start Docker and retry"

KIND_CLUSTER_NAME="${KIND_CLUSTER_NAME:-thumbnail-platform}"
IMAGE_TAG="${IMAGE_TAG:-latest}"
COMPONENTS="${COMPONENTS:-server worker operator}"

kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER_NAME" \
  || die "no Kind cluster named '${KIND_CLUSTER_NAME}': create it with 'make k8s-setup' (or set KIND_CLUSTER_NAME)"

for component in $COMPONENTS; do
  case "$component" in
    server) name=thumbnail-service-server ;;
    worker) name=thumbnail-service-worker ;;
    operator) name=thumbnail-operator ;;
    *) die "unknown component '$component' (expected server, worker or operator)" ;;
  esac
  docker image inspect "${name}:${IMAGE_TAG}" >/dev/null 2>&1 \
    || die "image ${name}:${IMAGE_TAG} is not built: run 'make k8s-build' (or scripts/build.sh) first"
  step "loading ${name}:${IMAGE_TAG} into Kind cluster '${KIND_CLUSTER_NAME}'"
  kind load docker-image --name "$KIND_CLUSTER_NAME" "${name}:${IMAGE_TAG}"
done
step "images loaded into '${KIND_CLUSTER_NAME}'"
