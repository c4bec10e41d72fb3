#!/usr/bin/env bash
# Builds the pinned test-substrate binaries from their own Go modules and caches
# them outside git, keyed by a hash of the module (go.mod, go.sum, any *.go) and
# its build flags: only the first run pays.
#
#   tools/build-tools.sh                 build what is missing (prints progress)
#   tools/build-tools.sh control-plane   only the control plane and servers (etcd, kube-*, kwok,
#                                        minio, mc, helm)
#   tools/build-tools.sh node            only what a real node runs (kubelet, kube-proxy,
#                                        containerd, CNI plugins, crictl, coredns, kube-router)
#   tools/build-tools.sh --bindir        print the directory holding the binaries
#
# Modules (one per tool, pinned with go.sum) live in tools/go/<tool>/.
# The CNI plugins (bridge, host-local, loopback, portmap) are linked into
# <bindir>/cni/, a directory holding only plugins, to be containerd's and the
# kubelet's CNI bin dir. runc is not built here (Debian package `runc`), nor ipset (Debian
# package `ipset`, which kube-router's firewall runs).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${THUMBNAIL_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/thumbnail-platform/tools}"
BINDIR="$CACHE/bin"

case "${1:-all}" in
  --bindir) echo "$BINDIR"; exit 0 ;;
  all | control-plane | node) ONLY="${1:-all}" ;;
  *) echo "usage: $0 [all | control-plane | node | --bindir]" >&2; exit 2 ;;
esac

command -v go >/dev/null || { echo "error: Go is not installed; install Go >= 1.24 first" >&2; exit 1; }
mkdir -p "$BINDIR"

# modver <module dir> <module path>: the version of <module path> pinned in tools/go/<module dir>/go.mod
modver() {
  local v
  v="$(awk -v m="$2" '{sub(/^require[ \t]+/, "")} $1 == m {print $2; exit}' "$ROOT/tools/go/$1/go.mod")"
  [[ "$v" == v* ]] || { echo "error: cannot read the $2 version from tools/go/$1/go.mod" >&2; exit 1; }
  echo "$v"
}

K8S_VERSION="$(modver kubernetes k8s.io/kubernetes)"
K8S_LDFLAGS="-s -w -X k8s.io/component-base/version.gitVersion=${K8S_VERSION} \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) \
 -X k8s.io/component-base/version.gitTreeState=clean"
# Static containerd without the btrfs/devmapper/zfs snapshotters (they need C headers).
CONTAINERD_FLAGS=("-s -w -X github.com/containerd/containerd/v2/version.Version=$(modver containerd github.com/containerd/containerd/v2)"
  CGO_ENABLED=0 -tags=no_btrfs,no_devmapper,no_zfs)
CNI_LDFLAGS="-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$(modver cni-plugins github.com/containernetworking/plugins)"
# kube-router as its Makefile builds it (static, version stamped); only its firewall runs on the
# node (see tools/go/kube-router/go.mod).
KUBE_ROUTER_LDFLAGS="-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$(modver kube-router github.com/cloudnativelabs/kube-router/v2)"
CRICTL_LDFLAGS="-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$(modver cri-tools sigs.k8s.io/cri-tools)"
# helm as its Makefile stamps it: its version, and the Kubernetes minor of its client libraries
# (without it `helm template` assumes Kubernetes 1.20).
HELM_K8S_MINOR="$(modver helm k8s.io/client-go | cut -d. -f2)"
HELM_LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=$(modver helm helm.sh/helm/v3) \
 -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in chartutil lint/rules; do
  HELM_LDFLAGS+=" -X helm.sh/helm/v3/pkg/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/$pkg.k8sVersionMinor=$HELM_K8S_MINOR"
done

# section <name>: the builds that follow belong to <name> (control-plane or node)
SECTION=""
section() { SECTION="$1"; }

# build <module dir> <binary name> <package> [ldflags] [VAR=value | -go-build-flag]...
# A name with a directory (cni/bridge) is linked into that subdirectory of the bindir.
build() {
  [[ "$ONLY" == all || "$ONLY" == "$SECTION" ]] || return 0
  local module="$1" name="$2" pkg="$3" ldflags="${4:--s -w}"
  local dir="$ROOT/tools/go/$module" arg key
  local -a envs=() flags=()
  for arg in "${@:5}"; do
    if [[ "$arg" == -* ]]; then flags+=("$arg"); else envs+=("$arg"); fi
  done
  key="$( (cat "$dir/go.mod" "$dir/go.sum"; echo "$ldflags"
    if (( $# > 4 )); then printf '%s\n' "${@:5}"; fi
    find "$dir" -maxdepth 1 -name '*.go' | sort | xargs -r cat) | sha256sum | cut -c1-12)"
  local out="$CACHE/$module-$key/${name##*/}"
  if [[ -x "$out" ]]; then
    echo "==> $name: cached ($out)"
  else
    echo "==> $name: building $pkg (first run only; several minutes on 2 cores)"
    local start=$SECONDS
    (cd "$dir" && env "${envs[@]}" GOFLAGS=-mod=mod go build -trimpath "${flags[@]}" -ldflags="$ldflags" -o "$out.tmp" "$pkg")
    mv "$out.tmp" "$out"
    echo "    built in $((SECONDS - start))s"
  fi
  mkdir -p "$(dirname "$BINDIR/$name")"
  ln -sfn "$out" "$BINDIR/$name"
  CURRENT["$module"]="$module-$key"
}

declare -A CURRENT=()
# Drop binaries of earlier pins so the cache holds one version per tool.
prune() {
  local module dir
  for module in "${!CURRENT[@]}"; do
    for dir in "$CACHE/$module"-*; do
      [[ "$(basename "$dir")" == "${CURRENT[$module]}" ]] || { echo "==> pruning stale $dir"; rm -rf "$dir"; }
    done
  done
}

section control-plane
build etcd etcd go.etcd.io/etcd/server/v3
build kubernetes kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$K8S_LDFLAGS"
build kubernetes kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$K8S_LDFLAGS"
build kubernetes kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler "$K8S_LDFLAGS"
build kwok kwok sigs.k8s.io/kwok/cmd/kwok
build kubernetes kubectl k8s.io/kubernetes/cmd/kubectl "$K8S_LDFLAGS"
build minio minio github.com/minio/minio
build mc mc github.com/minio/mc
build helm helm helm.sh/helm/v3/cmd/helm "$HELM_LDFLAGS" # the chart tests (tests/deploy/test_chart.py)

section node
build kubernetes kubelet k8s.io/kubernetes/cmd/kubelet "$K8S_LDFLAGS"
build kubernetes kube-proxy k8s.io/kubernetes/cmd/kube-proxy "$K8S_LDFLAGS"
build containerd containerd github.com/containerd/containerd/v2/cmd/containerd "${CONTAINERD_FLAGS[@]}"
build containerd containerd-shim-runc-v2 github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 "${CONTAINERD_FLAGS[@]}"
build containerd ctr github.com/containerd/containerd/v2/cmd/ctr "${CONTAINERD_FLAGS[@]}"
for plugin in main/bridge ipam/host-local main/loopback meta/portmap; do
  build cni-plugins "cni/${plugin#*/}" "github.com/containernetworking/plugins/plugins/$plugin" "$CNI_LDFLAGS"
done
build cri-tools crictl sigs.k8s.io/cri-tools/cmd/crictl "$CRICTL_LDFLAGS"
build coredns coredns . # tools/go/coredns/main.go: CoreDNS with only the cluster-DNS plugins
# NetworkPolicy enforcement (iptables + ipset), run with the router and service proxy off.
build kube-router kube-router github.com/cloudnativelabs/kube-router/v2/cmd/kube-router \
  "$KUBE_ROUTER_LDFLAGS" CGO_ENABLED=0

# A partial run keeps the other set's binaries even if their pins went stale.
if [[ "$ONLY" == all ]]; then prune; fi
echo "==> tools ready in $BINDIR ($(du -sh "$CACHE" | cut -f1))"
