#!/usr/bin/env bash
# Regenerates tests/data/monitoring-crds/: the Prometheus Operator's PodMonitor and
# PrometheusRule CRDs, which the operator's cluster tests install to check the objects it
# creates against the real schema. The Go module proxy serves the API types module
# (pkg/apis/monitoring, pinned in tools/go/monitoring-crds/go.mod) but not the repository
# that ships the YAML, so they are generated from the types with controller-gen, as
# upstream does. Takes about two minutes; the output is committed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/tests/data/monitoring-crds"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cd "$ROOT/tools/go/monitoring-crds"
echo "==> controller-gen over github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
go run sigs.k8s.io/controller-tools/cmd/controller-gen crd:crdVersions=v1,maxDescLen=0 \
  paths=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1 \
  output:crd:dir="$WORK"
mkdir -p "$OUT"
for kind in podmonitors prometheusrules; do
  cp "$WORK/monitoring.coreos.com_$kind.yaml" "$OUT/"
  echo "wrote $OUT/monitoring.coreos.com_$kind.yaml"
done
