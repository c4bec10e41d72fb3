# Benchmarks (docs/benchmarks.md). Not part of `make test`: they take minutes and their
# numbers only mean something as ratios within one run. Each prints a Markdown table and
# writes bench/results/<name>.json. Included by the root Makefile.
#   make bench            every benchmark below, in order, except bench-soak, bench-real-node and
#                         bench-autoscaling (real node: root, minutes each)
#   make bench-peers      what the peer comparisons need (Debian libvips tools, imgproxy, thumbor, Pillow)
#   make bench-soak       30 minutes of mixed traffic with a fault every 2 minutes (kept out of
#                         `make bench`, which it would make 30+ minutes longer)

BENCH_ARGS ?=
BENCH_PY := $(BIN)/python -m

.PHONY: bench bench-peers bench-engine bench-pipeline bench-api bench-operator bench-memory bench-imaging bench-isolation bench-placeholder bench-renditions bench-real-node bench-autoscaling bench-soak

bench: bench-engine bench-pipeline bench-api bench-operator bench-memory bench-imaging bench-isolation bench-placeholder bench-renditions ## run every benchmark but bench-soak and bench-real-node (minutes; see docs/benchmarks.md)

bench-peers: system-deps venv tools ## install/build the peers the benchmarks compare against
	@bench/setup-peers.sh

bench-engine: bench-peers ## engine: ours vs Pillow, vipsthumbnail, thumbor, imgproxy (one core)
	@$(BENCH_PY) bench.engine $(BENCH_ARGS)

bench-pipeline: bench-peers ## pipeline: API+Redis+workers+MinIO+PostgreSQL vs engine-only and imgproxy over HTTP
	@$(BENCH_PY) bench.pipeline $(BENCH_ARGS)

bench-api: system-deps venv tools ## API: submit/status throughput vs a bare FastAPI endpoint
	@$(BENCH_PY) bench.api_overhead $(BENCH_ARGS)

bench-operator: system-deps venv tools ## operator: apply->Ready vs a bare Deployment, 100 CRs, idle writes
	@$(BENCH_PY) bench.operator_scale $(BENCH_ARGS)

bench-memory: system-deps venv tools ## worker RSS across >= 5,000 jobs
	@$(BENCH_PY) bench.worker_memory $(BENCH_ARGS)

bench-imaging: venv ## decode-once multi-size render vs one thumbnail_buffer per size
	@$(BENCH_PY) bench.decode_once $(BENCH_ARGS)

bench-isolation: venv ## render in a child process vs inline (cost of render isolation)
	@$(BENCH_PY) bench.render_isolation $(BENCH_ARGS)

bench-placeholder: venv ## render with the ThumbHash placeholder vs without (its cost per job)
	@$(BENCH_PY) bench.placeholder $(BENCH_ARGS)

bench-renditions: bench-peers ## signed renditions over HTTP: first-hit latency and cached-hit throughput vs thumbor (imgproxy where available)
	@$(BENCH_PY) bench.renditions $(BENCH_ARGS)

bench-real-node: system-deps venv tools images ## sample on the real node: apply->Ready vs bare Deployment, NodePort thumbnails/s vs loopback
	@$(BENCH_PY) bench.real_node $(BENCH_ARGS)

bench-autoscaling: system-deps venv tools images ## real node: fixed workers vs an item-count rule (KEDA's) vs the cost-aware autoscaler on a mixed burst
	@$(BENCH_PY) bench.autoscaling $(BENCH_ARGS)

bench-soak: system-deps venv tools ## soak: 30 min mixed traffic, a fault every 2 min; nothing lost (not in `make bench`: 30+ min; BENCH_ARGS=--quick: 3 min)
	@$(BENCH_PY) bench.soak $(BENCH_ARGS)
