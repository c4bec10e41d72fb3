#!/usr/bin/env bash
# Install (or upgrade) the operator on the current kubectl cluster, then apply a sample
# ThumbnailService and optionally wait until it is Ready. Safe to run again.
#
# Environment:
#   KUBE_CONTEXT      kubectl context to use        (default: the current context)
#   OPERATOR_IMAGE    operator image reference      (default: the one in manifests/, thumbnail-operator:latest)
#   REGISTRY, IMAGE_TAG  where the server/worker images come from (default: local, latest);
#                     patched into the sample when set
#   SAMPLE            ThumbnailService to apply     (default: manifests/samples/thumbnailservice-full.yaml;
#                     "none" installs only the operator)
#   SAMPLE_NAMESPACE  namespace of the sample       (default: default)
#   WAIT=1            wait until the sample is Ready (timeout WAIT_TIMEOUT, default 600s)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "error: $*" >&2; exit 1; }
step() { echo "==> $*"; }

KUBECTL="${KUBECTL:-kubectl}"
command -v "$KUBECTL" >/dev/null 2>&1 \
  || die "kubectl is required to deploy but was not found in PATH (https://kubernetes.io/docs/tasks/tools/)"

kc=("$KUBECTL")
[ -n "${KUBE_CONTEXT:-}" ] && kc+=(--context "$KUBE_CONTEXT")
SAMPLE="${SAMPLE:-manifests/samples/thumbnailservice-full.yaml}"
SAMPLE_NAMESPACE="${SAMPLE_NAMESPACE:-default}"
WAIT_TIMEOUT="${WAIT_TIMEOUT:-600s}"
OPERATOR_NAMESPACE=thumbnail-system
CRD=thumbnailservices.thumbnails.platform.dev

context="$("${kc[@]}" config current-context 2>/dev/null || true)"
[ -n "${KUBE_CONTEXT:-}" ] && context="$KUBE_CONTEXT"
"${kc[@]}" version --request-timeout=10s >/dev/null 2>&1 \
  || die "cannot reach the Kubernetes API with context '${context:-<none>}': check 'kubectl cluster-info' (Kind: run 'make k8s-setup')"

source_dir="manifests/"
if [ -n "${OPERATOR_IMAGE:-}" ]; then
  # A throw-away kustomize overlay, so the Deployment is created with the right image (no
  # rollout of a default image that cannot be pulled first).
  overlay="$(mktemp -d "$PWD/.deploy-overlay.XXXXXX")"  # kustomize wants a relative base
  trap 'rm -rf "$overlay"' EXIT
  ref="$OPERATOR_IMAGE" image_field=""
  case "$ref" in
    *@*) image_field="digest: \"${ref#*@}\"" ref="${ref%%@*}" ;;
    *) last="${ref##*/}"
       case "$last" in *:*) image_field="newTag: \"${last#*:}\"" ref="${ref%:*}" ;; esac ;;
  esac
  printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s\nimages:\n  - name: thumbnail-operator\n    newName: "%s"\n    %s\n' \
    ../manifests "$ref" "${image_field:-newTag: latest}" > "$overlay/kustomization.yaml"
  source_dir="$overlay"
  step "using operator image ${OPERATOR_IMAGE}"
fi
step "installing the operator (CRD, RBAC, Deployment) into context '${context}' from manifests/"
"${kc[@]}" apply --server-side --field-manager=thumbnail-deploy --force-conflicts -k "$source_dir"
"${kc[@]}" wait --for=condition=Established "crd/${CRD}" --timeout=60s >/dev/null

step "waiting for the operator to become available"
if ! "${kc[@]}" -n "$OPERATOR_NAMESPACE" rollout status deployment/thumbnail-operator --timeout=180s; then
  "${kc[@]}" -n "$OPERATOR_NAMESPACE" get pods -o wide >&2 || true
  die "the operator did not become ready: see 'kubectl -n ${OPERATOR_NAMESPACE} describe pod -l app.kubernetes.io/name=thumbnail-operator' and its logs"
fi

if [ "$SAMPLE" = none ]; then
  step "operator installed; no sample applied (SAMPLE=none)"
  exit 0
fi
[ -f "$SAMPLE" ] || die "sample '${SAMPLE}' not found"
name="$("${kc[@]}" create --dry-run=client -o jsonpath='{.metadata.name}' -f "$SAMPLE")"
step "applying ThumbnailService '${name}' (${SAMPLE}) in namespace '${SAMPLE_NAMESPACE}'"
"${kc[@]}" get namespace "$SAMPLE_NAMESPACE" >/dev/null 2>&1 || "${kc[@]}" create namespace "$SAMPLE_NAMESPACE"
# The CRD converts through the operator's webhook, whose CA the operator publishes in the CRD
# right after it starts: retry for a short while instead of failing on the first TLS error.
for attempt in $(seq 1 30); do
  if "${kc[@]}" -n "$SAMPLE_NAMESPACE" apply -f "$SAMPLE"; then break; fi
  [ "$attempt" = 30 ] && die "could not apply ${SAMPLE}: see the error above and 'kubectl -n ${OPERATOR_NAMESPACE} logs deployment/thumbnail-operator'"
  echo "    (the conversion webhook is not ready yet; retrying in 2s)"
  sleep 2
done

if [ -n "${REGISTRY:-}" ] || [ "${IMAGE_TAG:-latest}" != latest ]; then
  prefix="${REGISTRY:+${REGISTRY%/}/}"
  tag="${IMAGE_TAG:-latest}"
  step "pointing the sample at ${prefix}thumbnail-service-{server,worker}:${tag}"
  "${kc[@]}" -n "$SAMPLE_NAMESPACE" patch thumbnailservice "$name" --type merge -p \
    "{\"spec\":{\"images\":{\"server\":{\"repository\":\"${prefix}thumbnail-service-server\",\"tag\":\"${tag}\"},\"worker\":{\"repository\":\"${prefix}thumbnail-service-worker\",\"tag\":\"${tag}\"}}}}"
fi

if [ "${WAIT:-0}" = 1 ]; then
  step "waiting up to ${WAIT_TIMEOUT} for ThumbnailService '${name}' to be Ready (first start pulls postgres, redis and minio)"
  if ! "${kc[@]}" -n "$SAMPLE_NAMESPACE" wait --for=condition=Ready "thumbnailservice/${name}" --timeout="$WAIT_TIMEOUT"; then
    "${kc[@]}" -n "$SAMPLE_NAMESPACE" get thumbnailservice "$name" -o wide >&2 || true
    "${kc[@]}" -n "$SAMPLE_NAMESPACE" get pods -l "app.kubernetes.io/instance=${name}" >&2 || true
    die "ThumbnailService '${name}' is not Ready: see 'kubectl describe thumbnailservice ${name}' (docs/deployment.md, Troubleshooting)"
  fi
fi
"${kc[@]}" -n "$SAMPLE_NAMESPACE" get thumbnailservice "$name"

node_port="$("${kc[@]}" -n "$SAMPLE_NAMESPACE" get thumbnailservice "$name" -o jsonpath='{.spec.server.service.nodePort.enabled}:{.spec.server.service.nodePort.port}')"
echo
echo "The API:"
if [ "${node_port%%:*}" = true ]; then
  echo "  http://localhost:${node_port#*:}   (Kind host port; elsewhere any node IP on port ${node_port#*:})"
else
  echo "  kubectl -n ${SAMPLE_NAMESPACE} port-forward service/${name}-server 8000:8000   then http://localhost:8000"
  node_port="false:8000"
fi
echo "API key (X-API-Key header):"
echo "  kubectl -n ${SAMPLE_NAMESPACE} get secret ${name}-credentials -o jsonpath='{.data.THUMBNAIL_API_KEYS}' | base64 -d"
echo "Then: curl http://localhost:${node_port#*:}/healthz/detailed  (health, metrics and the API: docs/deployment.md)"
