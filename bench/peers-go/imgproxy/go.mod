// imgproxy, pinned for the engine benchmark (bench/setup-peers.sh builds it with cgo
// against Debian's libvips). Not under tools/go/: CI builds everything there.
// v3.24.1 is a v3 release from before libvips 8.15-era requirements were likely; whether
// it builds against bookworm's libvips 8.14 could not be checked here: the Go module proxy
// answers 403 for github.com/imgproxy/imgproxy (every version). go.sum is written by the
// first successful build (GOFLAGS=-mod=mod in setup-peers.sh).
module thumbnail-platform/bench/peers-go/imgproxy

go 1.24

tool github.com/imgproxy/imgproxy/v3

require github.com/imgproxy/imgproxy/v3 v3.24.1
