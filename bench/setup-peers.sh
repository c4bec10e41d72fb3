#!/usr/bin/env bash
# Installs and builds what bench/engine.py (and the pipeline benchmark) compare against.
# Idempotent, prints progress; a peer that cannot be had here gets one line saying why
# (and, for imgproxy, a note the benchmark reports as "not available: <reason>").
#
#   bench/setup-peers.sh          install/build what is missing
#
#  - vipsthumbnail (Debian libvips-tools), libvips-dev + pkg-config for imgproxy's cgo build
#  - wrk (Debian): the HTTP load generator of bench/renditions.py
#  - thumbor, Pillow, scikit-image (corpus photo), pyinstrument, py-spy: `.[bench]` extra
#  - imgproxy from bench/peers-go/imgproxy, cached like tools/build-tools.sh, keyed by
#    sha256(go.mod + go.sum): ~/.cache/thumbnail-platform/tools/imgproxy-<key>/imgproxy
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${THUMBNAIL_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/thumbnail-platform/tools}"
VENV="${VENV:-$ROOT/.venv}"
MODULE="$ROOT/bench/peers-go/imgproxy"

# --- Debian packages ------------------------------------------------------------------
missing=()
for pkg in libvips-tools libvips-dev pkg-config time wrk; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) == 0 ]] || SUDO="sudo"
  echo "==> apt: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "==> apt: libvips-tools, libvips-dev, pkg-config, time already installed"
fi
echo "    vipsthumbnail: $(command -v vipsthumbnail) ($(vipsthumbnail --vips-version))"

# --- Python peers -----------------------------------------------------------------------
[[ -x "$VENV/bin/pip" ]] || { echo "error: no virtualenv at $VENV (run \`make venv\` first)" >&2; exit 1; }
if "$VENV/bin/python" -c 'import thumbor, PIL, skimage, pyinstrument' 2>/dev/null \
  && [[ -x "$VENV/bin/py-spy" ]]; then
  echo "==> python: .[bench] extra already installed"
else
  echo "==> python: pip install -e '.[bench]' (thumbor, Pillow, scikit-image, profilers)"
  "$VENV/bin/pip" install -q -e "$ROOT[bench]"
fi
"$VENV/bin/python" - <<'PY'
import PIL, thumbor
from PIL import features
print(f"    thumbor {thumbor.__version__}, Pillow {PIL.__version__} "
      f"(libjpeg-turbo {features.version('jpg')}, AVIF {features.check('avif')})")
PY

# --- imgproxy ----------------------------------------------------------------------------
key="$( (cat "$MODULE/go.mod"; cat "$MODULE/go.sum" 2>/dev/null || true) | sha256sum | cut -c1-12)"
dir="$CACHE/imgproxy-$key"
out="$dir/imgproxy"
package="$(awk '$1 == "require" && $2 ~ /imgproxy/ {print $2}' "$MODULE/go.mod")"
version="$(awk '$1 == "require" && $2 ~ /imgproxy/ {print $3}' "$MODULE/go.mod")"
mkdir -p "$dir"
for stale in "$CACHE"/imgproxy-*; do  # one pin at a time, like tools/build-tools.sh
  [[ "$stale" == "$dir" ]] || { echo "==> pruning stale $stale"; rm -rf "$stale"; }
done
unavailable() { echo "$1" > "$dir/unavailable.txt"; echo "==> imgproxy $version: not available: $1"; }
if [[ -x "$out" ]]; then
  echo "==> imgproxy $version: cached ($out)"
elif ! command -v go >/dev/null; then
  unavailable "Go is not installed (needed to build imgproxy)"
else
  echo "==> imgproxy $version: go build with cgo against libvips $(pkg-config --modversion vips) (first run only)"
  start=$SECONDS
  log="$dir/build.log"
  if (cd "$MODULE" && GOFLAGS=-mod=mod CGO_ENABLED=1 CGO_LDFLAGS_ALLOW='-s|-w' \
        go build -trimpath -ldflags="-s -w" -o "$out.tmp" "$package") >"$log" 2>&1; then
    mv "$out.tmp" "$out"; rm -f "$dir/unavailable.txt"
    echo "    built in $((SECONDS - start))s"
  elif grep -q "403 Forbidden" "$log"; then
    unavailable "the Go module proxy refuses $package@$version (403 Forbidden) and no other source of it is reachable from this machine"
  else
    unavailable "go build failed: $(grep -m1 -E 'error|cannot|undefined' "$log" || tail -1 "$log") (full log: $log)"
  fi
fi

echo "==> peers: vipsthumbnail $(command -v vipsthumbnail), thumbor $VENV/bin/thumbor, imgproxy $([[ -x "$out" ]] && echo "$out" || echo "not available (see $dir/unavailable.txt)")"
