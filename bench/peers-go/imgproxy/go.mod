// imgproxy, pinned for the engine and renditions benchmarks (bench/setup-peers.sh builds it
// with cgo against Debian's libvips). Not under tools/go/: CI builds everything there.
// The Go module proxy refuses every imgproxy v3 tried (403: v3.30.1, v3.28.0, v3.25.0,
// v3.24.1, v3.21.0) and v2.16.7; it serves v2.17.0 (2021), which builds against bookworm's
// libvips 8.14 (cgo needs CGO_LDFLAGS_ALLOW for its "-s -w"). go.sum is written by the first
// build (GOFLAGS=-mod=mod in setup-peers.sh).
module thumbnail-platform/bench/peers-go/imgproxy

go 1.24

tool github.com/imgproxy/imgproxy/v2

require github.com/imgproxy/imgproxy/v2 v2.17.0

require (
	cloud.google.com/go v0.83.0 // indirect
	cloud.google.com/go/storage v1.15.0 // indirect
	github.com/Azure/azure-pipeline-go v0.2.3 // indirect
	github.com/Azure/azure-storage-blob-go v0.13.0 // indirect
	github.com/airbrake/gobrake/v5 v5.0.3 // indirect
	github.com/aws/aws-sdk-go v1.38.65 // indirect
	github.com/benesch/cgosymbolizer v0.0.0-20190515212042-bec6fe6e597b // indirect
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/bugsnag/bugsnag-go/v2 v2.1.1 // indirect
	github.com/bugsnag/panicwrap v1.3.2 // indirect
	github.com/caio/go-tdigest v3.1.0+incompatible // indirect
	github.com/cespare/xxhash/v2 v2.1.1 // indirect
	github.com/getsentry/sentry-go v0.11.0 // indirect
	github.com/gofrs/uuid v4.0.0+incompatible // indirect
	github.com/golang/groupcache v0.0.0-20200121045136-8c9f03a8e57e // indirect
	github.com/golang/protobuf v1.5.2 // indirect
	github.com/google/uuid v1.1.2 // indirect
	github.com/googleapis/gax-go/v2 v2.0.5 // indirect
	github.com/honeybadger-io/honeybadger-go v0.5.0 // indirect
	github.com/ianlancetaylor/cgosymbolizer v0.0.0-20201204192058-7acc97e53614 // indirect
	github.com/jmespath/go-jmespath v0.4.0 // indirect
	github.com/jonboulle/clockwork v0.2.0 // indirect
	github.com/matoous/go-nanoid/v2 v2.0.0 // indirect
	github.com/mattn/go-ieproxy v0.0.1 // indirect
	github.com/matttproud/golang_protobuf_extensions v1.0.1 // indirect
	github.com/newrelic/go-agent/v3 v3.13.0 // indirect
	github.com/pborman/uuid v1.2.0 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/prometheus/client_golang v1.11.0 // indirect
	github.com/prometheus/client_model v0.2.0 // indirect
	github.com/prometheus/common v0.26.0 // indirect
	github.com/prometheus/procfs v0.6.0 // indirect
	github.com/shirou/gopsutil v2.18.12+incompatible // indirect
	github.com/sirupsen/logrus v1.8.1 // indirect
	go.opencensus.io v0.23.0 // indirect
	golang.org/x/image v0.0.0-20201208152932-35266b937fa6 // indirect
	golang.org/x/net v0.0.0-20210503060351-7fd8e65b6420 // indirect
	golang.org/x/oauth2 v0.0.0-20210514164344-f6687ab2804c // indirect
	golang.org/x/sys v0.0.0-20210603125802-9665404d3644 // indirect
	golang.org/x/text v0.3.6 // indirect
	google.golang.org/api v0.48.0 // indirect
	google.golang.org/genproto v0.0.0-20210604141403-392c879c8b08 // indirect
	google.golang.org/grpc v1.38.0 // indirect
	google.golang.org/protobuf v1.26.0 // indirect
)
