# Kind / image / deployment workflow (docs/deployment.md). Included by the root Makefile.
#   make k8s-all      cluster + images + operator + sample, then wait until Ready
#   make k8s-setup | k8s-build | k8s-load | k8s-deploy | k8s-clean   one step at a time
#   make manifests    regenerate the install (kustomize, Helm chart) from its one source
#   make e2e          the end-to-end suite (tests/e2e) on a fresh Kind cluster; `make test` runs
#                     the same suite on the substrate's real node

KIND_CLUSTER_NAME ?= thumbnail-platform
KIND_CONFIG ?= manifests/kind/cluster.yaml
KUBECTL ?= kubectl
IMAGE_TAG ?= latest
SAMPLE ?= manifests/samples/thumbnailservice-full.yaml
WAIT_TIMEOUT ?= 600s
K8S_ENV := KIND_CLUSTER_NAME=$(KIND_CLUSTER_NAME) IMAGE_TAG=$(IMAGE_TAG) KUBECTL=$(KUBECTL)

# $(call require,<command>,<what it is for>,<install hint>): one clear line and exit 1 if missing.
require = command -v $(1) >/dev/null 2>&1 || { echo "error: $(1) is required for $(2) but was not found in PATH (install: $(3))" >&2; exit 1; }
need-docker = $(call require,docker,$(1),https://docs.docker.com/get-docker/); \
  docker info >/dev/null 2>&1 || { echo "error: $(1) needs a running Docker daemon but 'docker info' failed: start Docker and retry" >&2; exit 1; }
need-kind = $(call require,kind,$(1),https://kind.sigs.k8s.io/docs/user/quick-start/)
need-kubectl = $(call require,$(KUBECTL),$(1),https://kubernetes.io/docs/tasks/tools/)

.PHONY: k8s-setup k8s-build k8s-load k8s-deploy k8s-all k8s-clean k8s-sync-crds manifests e2e

k8s-setup: ## create the Kind cluster (1 control-plane + 2 workers, host ports 30000/30001)
	@$(call need-docker,make k8s-setup)
	@$(call need-kind,make k8s-setup)
	@$(call need-kubectl,make k8s-setup)
	@if kind get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER_NAME)'; then \
	  echo "==> Kind cluster '$(KIND_CLUSTER_NAME)' already exists"; \
	else \
	  echo "==> creating Kind cluster '$(KIND_CLUSTER_NAME)' from $(KIND_CONFIG)"; \
	  kind create cluster --name '$(KIND_CLUSTER_NAME)' --config '$(KIND_CONFIG)' --wait 120s; \
	fi
	@$(KUBECTL) --context 'kind-$(KIND_CLUSTER_NAME)' get nodes

k8s-build: ## build the server, worker and operator images (scripts/build.sh)
	@$(call need-docker,make k8s-build)
	@$(K8S_ENV) scripts/build.sh

k8s-load: ## load the images into the Kind cluster (scripts/kind-load-images.sh)
	@$(call need-docker,make k8s-load)
	@$(call need-kind,make k8s-load)
	@$(K8S_ENV) scripts/kind-load-images.sh

k8s-deploy: ## install the operator and apply the sample ThumbnailService (scripts/deploy.sh)
	@$(call need-kubectl,make k8s-deploy)
	@$(K8S_ENV) KUBE_CONTEXT='kind-$(KIND_CLUSTER_NAME)' SAMPLE='$(SAMPLE)' scripts/deploy.sh

k8s-all: ## everything: cluster, images, load, operator, sample; waits until the sample is Ready
	@$(call need-docker,make k8s-all)
	@$(call need-kind,make k8s-all)
	@$(call need-kubectl,make k8s-all)
	@$(MAKE) --no-print-directory k8s-setup k8s-build k8s-load
	@$(K8S_ENV) KUBE_CONTEXT='kind-$(KIND_CLUSTER_NAME)' SAMPLE='$(SAMPLE)' WAIT=1 \
	  WAIT_TIMEOUT='$(WAIT_TIMEOUT)' scripts/deploy.sh
	@echo "==> done: the ThumbnailService is Ready (make k8s-clean deletes the cluster)"

k8s-clean: ## delete the Kind cluster (and everything in it)
	@$(call need-kind,make k8s-clean)
	@if kind get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER_NAME)'; then \
	  echo "==> deleting Kind cluster '$(KIND_CLUSTER_NAME)'"; kind delete cluster --name '$(KIND_CLUSTER_NAME)'; \
	else echo "==> no Kind cluster '$(KIND_CLUSTER_NAME)'; nothing to delete"; fi

manifests: venv ## regenerate manifests/, charts/thumbnail-operator/ and operator/rbac.yaml (after editing crds/ or operator/thumbnail_operator/install/)
	@echo "==> python -m thumbnail_operator.install"
	@$(BIN)/python -m thumbnail_operator.install

k8s-sync-crds: manifests ## (old name of make manifests: copies crds/ into manifests/ and the chart)

e2e: venv ## the end-to-end suite on a fresh Kind cluster (needs Docker and kind)
	@$(call need-docker,make e2e)
	@$(call need-kind,make e2e)
	@$(MAKE) --no-print-directory tools
	@echo "==> pytest tests/e2e on Kind (creates and deletes Kind cluster 'thumbnail-e2e')"
	@E2E_CLUSTER=kind $(BIN)/pytest tests/e2e -p no:cacheprovider $(PYTEST_ARGS)
