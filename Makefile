# authmesh — `make dev` runs the whole system locally, `make test` runs every test.
# Both build and cache every tool they need on first use; see README.md.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Tool versions are pinned in one file, shared with internal/testenv.
include hack/versions.env

# Tools built from source are cached outside the work tree, so a fresh clone (CI) stays warm.
TOOLS_CACHE     ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/authmesh
K8S_BIN         := $(TOOLS_CACHE)/k8s-$(KUBERNETES_VERSION)
CONTROLLER_GEN  := $(TOOLS_CACHE)/controller-gen-$(CONTROLLER_GEN_VERSION)/controller-gen
GOLANGCI_LINT   := $(TOOLS_CACHE)/golangci-lint-$(GOLANGCI_LINT_VERSION)/golangci-lint
HELM            := $(TOOLS_CACHE)/helm-$(HELM_VERSION)/helm

SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

# Our own programs go to bin/; Go's build cache makes rebuilding them cheap.
BIN   := $(CURDIR)/bin
DEVDB := $(BIN)/devdb

GO_TEST_FLAGS ?= -count=1
TEST_TIMEOUT  ?= 20m
# The race detector needs cgo (gcc); without it the tests run without it.
RACE          ?= $(shell command -v gcc >/dev/null && echo -race)

export KUBEBUILDER_ASSETS := $(K8S_BIN)
export AUTHMESH_DEVDB     := $(DEVDB)

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# ---- Everyday ----------------------------------------------------------------------------------

.PHONY: dev
dev: devdb ## Run the whole system locally: dev database, mailer, auth server, demo app and sidecar.
	@mkdir -p .dev
	CGO_ENABLED=0 go build -trimpath -o $(BIN)/ ./cmd/authserver ./cmd/sidecar ./cmd/demoapp ./cmd/devmail ./cmd/devstack
	exec $(BIN)/devstack -bin $(BIN) -samples config/samples -state .dev

.PHONY: test
test: tools verify-generate check-sidecar-deps ## Run every test against a real kube-apiserver, MongoDB-wire server and SMTP listener.
	go vet ./...
	@[ -n "$(RACE)" ] || echo "no gcc: running the tests without the race detector"
	go test $(RACE) -timeout $(TEST_TIMEOUT) $(GO_TEST_FLAGS) $$(go list ./... | grep -v -e /test/e2e -e /test/fault)
	@echo "fault injection: real components through outages, timing-sensitive, so without the race detector"
	go test -timeout $(TEST_TIMEOUT) $(GO_TEST_FLAGS) ./test/fault
	@echo "end-to-end: the real binaries as processes against envtest, the dev database and SMTP"
	go test -v -timeout $(TEST_TIMEOUT) $(GO_TEST_FLAGS) ./test/e2e
	cd cmd/devdb && go vet ./... && go test -timeout $(TEST_TIMEOUT) $(GO_TEST_FLAGS) ./...

.PHONY: bench
bench: k8s-tools devdb ## Run the benchmarks: Go micro-benchmarks, then hack/bench (sidecar vs a tuned bare proxy, revocation, JWKS flood, sessions, controller).
	@command -v wrk >/dev/null || { echo "installing Debian's wrk (load generator)"; $(SUDO) apt-get install -y -qq wrk >/dev/null 2>&1 || echo "no wrk: using the built-in load generator"; }
	go test -run '^$$' -bench . -benchmem -benchtime 2000x ./guard/ ./sidecar/ ./internal/...
	CGO_ENABLED=0 go build -trimpath -o $(BIN)/ ./cmd/sidecar ./cmd/controller
	go build -o $(BIN)/bench ./hack/bench
	CGO_ENABLED=0 go build -trimpath -o $(BIN)/benchproxy ./hack/bench/benchproxy
	$(BIN)/bench run -sidecar $(BIN)/sidecar -benchproxy $(BIN)/benchproxy -controller $(BIN)/controller -out .bench/sidecar.json

.PHONY: soak
soak: ## Soak the sidecar: 10 minutes at 80% of its measured saturation (SOAK=10m), 5xx, RSS and goroutines over time.
	CGO_ENABLED=0 go build -trimpath -o $(BIN)/sidecar ./cmd/sidecar
	go build -o $(BIN)/bench ./hack/bench
	CGO_ENABLED=0 go build -trimpath -o $(BIN)/benchproxy ./hack/bench/benchproxy
	$(shell command -v taskset >/dev/null && echo taskset -c 1) $(BIN)/bench soak -sidecar $(BIN)/sidecar -benchproxy $(BIN)/benchproxy -duration $(or $(SOAK),10m)

.PHONY: build
build: devdb ## Build every binary into bin/.
	CGO_ENABLED=0 go build -trimpath -o $(BIN)/ ./cmd/controller ./cmd/authserver ./cmd/sidecar

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Regenerate deepcopy code, CRD manifests and the controller's RBAC role.
	$(CONTROLLER_GEN) object paths=./api/...
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=authmesh-controller paths=./controllers/... paths=./cmd/controller/... output:rbac:artifacts:config=config/rbac

.PHONY: verify-generate
verify-generate: $(CONTROLLER_GEN) ## Fail when `make generate` would change a generated file.
	@hack/verify-generate.sh

.PHONY: check-sidecar-deps
check-sidecar-deps: ## Fail when the sidecar binary would link a Kubernetes or MongoDB package.
	@bad=$$(go list -deps ./cmd/sidecar | grep -E '^(k8s\.io|sigs\.k8s\.io|go\.mongodb\.org)/' || true); \
	if [ -n "$$bad" ]; then echo "cmd/sidecar must not link Kubernetes or MongoDB packages; it links:"; echo "$$bad"; exit 1; fi

.PHONY: lint
lint: $(GOLANGCI_LINT) ## gofmt check, go vet and golangci-lint (not part of test).
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	$(GOLANGCI_LINT) run ./...

.PHONY: clean
clean: ## Remove bin/ and .dev/ (not the tool cache).
	rm -rf $(BIN) .dev

# ---- Tools -------------------------------------------------------------------------------------

.PHONY: tools
tools: k8s-tools devdb ## Build every tool the tests need.

.PHONY: k8s-tools
k8s-tools: ## kube-apiserver and kubectl from source, etcd from Debian (cached; ~15 min the first time).
	@hack/build-k8s.sh $(K8S_BIN) $(KUBERNETES_VERSION)

.PHONY: devdb
devdb: ## The dev/test MongoDB-wire server (FerretDB + SQLite, serialized).
	@cd cmd/devdb && go build -trimpath -o $(DEVDB) .

.PHONY: controller-gen golangci-lint helm
controller-gen: $(CONTROLLER_GEN)
golangci-lint: $(GOLANGCI_LINT)
helm: $(HELM)

$(CONTROLLER_GEN):
	GOBIN=$(dir $@) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
$(GOLANGCI_LINT):
	GOBIN=$(dir $@) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
$(HELM):
	GOBIN=$(dir $@) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

# ---- Packaging: images, the kind demo, chart and kustomize checks --------------------------------
# The chart (charts/authmesh), the kustomize bases (config/) and the kind demo's steps
# (hack/kind.sh) are tested by hack/packaging, which finds helm and kustomize through HELM and
# KUSTOMIZE: make test builds both first.

KUSTOMIZE := $(TOOLS_CACHE)/kustomize-$(KUSTOMIZE_VERSION)/kustomize
KIND      := $(TOOLS_CACHE)/kind-$(KIND_VERSION)/kind
# kubectl: the one on PATH, else the one make k8s-tools builds.
KUBECTL   ?= $(or $(shell command -v kubectl 2>/dev/null),$(K8S_BIN)/kubectl)
export HELM KUSTOMIZE

# Version information stamped into every binary (internal/version; -version prints it).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# make build stamps the version through GOFLAGS (one -X: GOFLAGS values cannot hold spaces).
build: export GOFLAGS += -ldflags=-X=github.com/authmesh/authmesh/internal/version.Version=$(VERSION)

# Images: one per binary, plus the kind demo's dev database, demo app and mailer: the targets of build/Dockerfile.
IMAGE_REGISTRY ?= authmesh
IMAGE_TAG      ?= dev
IMAGE_NAMES    := controller authserver sidecar devdb demoapp devmail

test: $(HELM) $(KUSTOMIZE)
tools: $(HELM) $(KUSTOMIZE)

.PHONY: images
images: ## Build every image with Docker (IMAGE_REGISTRY/<name>:IMAGE_TAG, default authmesh/<name>:dev).
	@command -v docker >/dev/null || { echo "images: no docker on this machine; build the images where Docker runs"; exit 1; }
	for name in $(IMAGE_NAMES); do \
	  docker build -f build/Dockerfile --target $$name --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) \
	    -t $(IMAGE_REGISTRY)/$$name:$(IMAGE_TAG) . ; \
	done

.PHONY: kind-up kind-load kind-deploy kind-demo kustomize kind
kind-up: $(KIND) ## Create the kind cluster "authmesh" (config/kind/cluster.yaml).
	KIND=$(KIND) hack/kind.sh up
kind-load: $(KIND) images ## Build the images and load them into the kind cluster.
	KIND=$(KIND) IMAGES="$(foreach n,$(IMAGE_NAMES),$(IMAGE_REGISTRY)/$(n):$(IMAGE_TAG))" hack/kind.sh load
kind-deploy: $(HELM) ## Install the dev database and mailer, then the chart with config/kind/values.yaml.
	HELM=$(HELM) KUBECTL=$(KUBECTL) hack/kind.sh deploy
kind-demo: ## Apply the sample tenants and the protected demo app, and say how to try it.
	KUBECTL=$(KUBECTL) hack/kind.sh demo
kustomize: $(KUSTOMIZE)
kind: $(KIND)

$(KUSTOMIZE):
	GOBIN=$(dir $@) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
$(KIND):
	GOBIN=$(dir $@) go install sigs.k8s.io/kind@$(KIND_VERSION)
