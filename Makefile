# Thumbnail platform: one entry point for setup, tests and the local/Kind workflows.
# Every target installs what it needs and is safe to run twice.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=
NODES ?= 1

.PHONY: help system-deps venv lock tools lint test test-unit dev dev-cluster dev-node clean

help: ## list targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 20

# The real node and the image builds: runc, iptables and conntrack (kube-proxy), socat (host
# forwards into the node's network namespace), buildah and debootstrap (images, no Docker).
NODE_PACKAGES := runc:runc iptables:iptables conntrack:conntrack ipset:ipset socat:socat buildah:buildah \
  debootstrap:debootstrap nsenter:util-linux
# The console's browser test drives Debian's headless Chromium (never a downloaded browser).
BROWSER_PACKAGES := chromium:chromium

system-deps: ## Debian packages: PostgreSQL, Redis, the real node's runtime and image tools, Chromium
	@missing=""; \
	  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$$missing postgresql"; \
	  command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || missing="$$missing redis-server"; \
	  command -v runuser >/dev/null || missing="$$missing util-linux"; \
	  for pair in $(NODE_PACKAGES) $(BROWSER_PACKAGES); do \
	    command -v "$${pair%%:*}" >/dev/null || [ -x "/usr/sbin/$${pair%%:*}" ] || missing="$$missing $${pair##*:}"; \
	  done; \
	  if [ -n "$$missing" ]; then \
	    echo "==> installing Debian packages:$$missing"; \
	    $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "==> system packages present (postgresql, redis-server, runc, buildah, chromium, ...)"; fi
	@command -v go >/dev/null || { echo "error: Go >= 1.24 is required to build the test tools (https://go.dev/dl)"; exit 1; }

# Installed from the lock (constraints.txt), so every machine tests the same versions.
$(STAMP): pyproject.toml constraints.txt
	@echo "==> Python environment in $(VENV) (versions from constraints.txt)"
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -q --progress-bar off -c constraints.txt -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## Python virtualenv with every extra, at the versions of constraints.txt

lock: ## re-resolve constraints.txt: the newest versions within pyproject.toml's ranges
	@scripts/lock.sh

tools: ## build the pinned Go binaries (etcd, kube-*, kwok, minio, kubectl) into the cache
	@tools/build-tools.sh

lint: venv ## ruff and mypy
	@echo "==> ruff"; $(BIN)/ruff check .
	@echo "==> mypy"; $(BIN)/mypy

test: system-deps venv tools images lint ## everything CI runs: lint, unit, service, cluster and real-node e2e tests
	@echo "==> pytest"; $(BIN)/pytest $(PYTEST_ARGS)

test-unit: venv ## fast tests without servers
	$(BIN)/pytest tests/service/unit tests/operator/unit $(PYTEST_ARGS)

dev: system-deps venv tools ## run the service stack on loopback (PostgreSQL, Redis, MinIO, API, worker)
	@scripts/dev.sh

dev-cluster: system-deps venv tools ## run the local Kubernetes control plane (kwok nodes); prints the kubeconfig
	@mkdir -p .dev && $(BIN)/thumbnail-substrate up --kube-only --env-file .dev/cluster.env

dev-node: system-deps venv tools images ## a real Kubernetes node (real pods) with the operator and sample; NODES=2 for two; prints how to reach it
	@mkdir -p .dev && $(BIN)/thumbnail-substrate node --nodes $(NODES) --env-file .dev/node.env

clean: ## remove the virtualenv and caches (keeps the Go tool cache)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .dev

# Kind / image / deployment workflow (docs/deployment.md).
-include mk/*.mk
