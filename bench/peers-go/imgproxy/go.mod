// imgproxy, pinned for the engine benchmark (bench/setup-peers.sh builds it with cgo
// against Debian's libvips). Not under tools/go/: CI builds everything there.
// v3.24.1: a v3 release meant to build against Debian bookworm's libvips 8.14 (imgproxy's
// C glue guards newer libvips calls by version). go.sum is written by the first
// successful `go mod download`; see setup-peers.sh if the proxy refuses the module.
module thumbnail-platform/bench/peers-go/imgproxy

go 1.24

tool github.com/imgproxy/imgproxy/v3

require github.com/imgproxy/imgproxy/v3 v3.24.1
