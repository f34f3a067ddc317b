# Dexterity — see README.md. `make run` and `make test` are the two commands that matter.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
BIN := $(CURDIR)/bin
CONTROLLER_GEN := $(BIN)/controller-gen
KUSTOMIZE := $(BIN)/kustomize
export GOTOOLCHAIN := local
# Tests find kube-apiserver, etcd and dex in bin/.
export KUBEBUILDER_ASSETS := $(BIN)
TEST_FLAGS ?= -count=1 -timeout 30m

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: tools
tools: ## Build kube-apiserver, etcd, Dex, OpenTofu, controller-gen and kustomize into bin/ (only what is missing or re-pinned).
	hack/tools.sh all

.PHONY: codegen-tools
codegen-tools:
	hack/tools.sh codegen

.PHONY: manifests
manifests: codegen-tools ## Generate CRDs and RBAC from the Go markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook paths="./..." output:crd:artifacts:config=config/crd/bases output:webhook:artifacts:config=config/webhook

.PHONY: generate
generate: codegen-tools ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: fmt
fmt: ## go fmt.
	go fmt ./...

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: lint
lint: ## golangci-lint with .golangci.yml (the linter is installed into bin/ on first use).
	hack/tools.sh lint
	$(BIN)/golangci-lint run ./...

.PHONY: test
test: tools vet ## Run every test (envtest and the real Dex included; the Helm chart's module too).
	go test $(TEST_FLAGS) ./...
	cd test/helm && go test $(TEST_FLAGS) ./...

# The packages whose tests need no API server, no Dex and no built binary.
UNIT_PACKAGES := ./cmd/dexterity ./controllers/unit ./hack/bundlegen ./hack/chartgen ./internal/authz ./internal/clientspec \
	./internal/connector ./internal/dex ./internal/dexdeploy ./internal/importer ./internal/metrics/... ./internal/oidc \
	./internal/outcome ./internal/ownership ./internal/tenancy ./webhooks/fuzz

.PHONY: test-unit
test-unit: ## The fast tier: pure-logic tests, with the race detector (under a minute; no tools needed).
	go test -race -count=1 $(UNIT_PACKAGES)

.PHONY: verify-generated
verify-generated: manifests generate bundle chart ## Fail when generated files (config/, api/, bundle/, charts/) are stale or not committed.
	@git diff --exit-code -- config api bundle charts && test -z "$$(git status --porcelain -- config api bundle charts)" || { git status --short -- config api bundle charts; echo "generated files are stale: run 'make manifests generate bundle chart' and commit"; exit 1; }

##@ Build

.PHONY: build
build: ## Build the manager binary into bin/dexterity.
	CGO_ENABLED=0 go build -trimpath -o $(BIN)/dexterity ./cmd/dexterity

.PHONY: run
run: tools build ## Run everything locally: etcd + kube-apiserver + Dex + the manager + config/samples (Ctrl-C stops it all).
	go build -o $(BIN)/devenv ./hack/devenv
	$(BIN)/devenv --manager $(BIN)/dexterity --state .dev

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build -t $${IMG:-dexterity:dev} .

.PHONY: bench
bench: tools ## Run the benchmarks of docs/benchmarks.md (prints figures and ratios).
	go test ./test/bench/ -run '^$$' -bench . -benchtime 1x -timeout 90m
	go test ./test/bench/ -run '^$$' -bench SingleClientLatency -benchtime 50x -timeout 10m
	go test ./internal/oidc/ -run '^$$' -bench . -benchtime 3000x -count 3
	go test ./internal/registry/ -run '^$$' -bench . -benchtime 1x

.PHONY: bundle
bundle: manifests ## Generate bundle/ (OLM) from config/ with hack/bundlegen.
	go run ./hack/bundlegen

.PHONY: chart
chart: manifests ## Generate charts/dexterity (Helm) from config/ with hack/chartgen.
	go run ./hack/chartgen
