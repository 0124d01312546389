# Spiderpool-Go. `make test` is the test command CI runs (after `make tools`).
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c

ROOT        := $(abspath .)
TOOLS_BIN   := $(ROOT)/.tools/bin
CONTROLLER_GEN := $(TOOLS_BIN)/controller-gen
STATICCHECK := $(TOOLS_BIN)/staticcheck
OUT         := $(ROOT)/_output
GO_TEST     ?= go test
# The integration and e2e suites find the control plane binaries here.
export SPIDERPOOL_TOOLS_BIN := $(TOOLS_BIN)

BINARIES := spiderpool-agent spiderpool-controller spiderpool coordinator ifacer spiderpool-init spiderpoolctl spiderpool-sandbox spiderpool-plugins-install

.PHONY: all build tools generate manifests docs verify lint test test-unit test-integration test-e2e bench bench-scale fuzz clean help demo demo-down images

all: build

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

build: ## build our binaries into _output/bin (static, no cgo)
	@mkdir -p $(OUT)/bin
	@for b in $(BINARIES); do \
	  if [[ -d cmd/$$b ]]; then CGO_ENABLED=0 go build -trimpath -o $(OUT)/bin/$$b ./cmd/$$b; echo "built $(OUT)/bin/$$b"; fi; \
	done

tools: ## build the pinned tools (kube-apiserver, etcd, controller-gen, helm, staticcheck, CNI plugins) into .tools/bin
	@hack/build-tools.sh

generate: ## regenerate deepcopy functions
	@test -x $(CONTROLLER_GEN) || hack/build-tools.sh controller-gen
	$(CONTROLLER_GEN) object paths=./api/...

manifests: ## regenerate the CRDs into charts/spiderpool/crds
	@test -x $(CONTROLLER_GEN) || hack/build-tools.sh controller-gen
	$(CONTROLLER_GEN) crd:crdVersions=v1 paths=./api/... output:crd:dir=charts/spiderpool/crds

docs: ## regenerate docs/reference from the code and the chart (builds ./cmd/... for flags.md)
	go run ./hack/docgen -root . -out docs/reference

verify: generate manifests docs ## regenerate everything, then fail on any difference from git
	@gofmt -l $$(git ls-files '*.go') | tee /dev/stderr | (! grep -q .) || { echo "gofmt: files above need formatting"; exit 1; }
	@go mod tidy -diff >/dev/null || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	@git diff --exit-code -- api charts docs/reference || { echo "generated files are stale: run make generate manifests docs and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- api charts docs/reference)" || { git status --porcelain -- api charts docs/reference; echo "untracked generated files"; exit 1; }
	@echo "verify: generated files are current"

lint: ## gofmt, go vet, staticcheck, helm lint
	@test -x $(STATICCHECK) || hack/build-tools.sh staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [[ -n $$out ]]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	$(STATICCHECK) ./...
	@test -x $(TOOLS_BIN)/helm || hack/build-tools.sh helm
	$(TOOLS_BIN)/helm lint --strict charts/spiderpool
	@echo "lint: clean"

test-unit: ## unit tests (no control plane; as root they include the netns and user-mode-linux tests)
	$(GO_TEST) -count=1 ./api/... ./internal/... ./cmd/... ./bench/... ./hack/images/... ./hack/docgen/... ./test/chart/...

test-integration: ## suites against a real etcd + kube-apiserver
	@test -x $(TOOLS_BIN)/kube-apiserver || { echo "run make tools first"; exit 1; }
	$(GO_TEST) -count=1 -timeout 20m ./test/integration/...

test-e2e: images ## the guides' three scenarios and the sandbox command on the real cluster (root)
	$(GO_TEST) -count=1 -timeout 75m ./test/e2e/...

test-faults: build ## the fault-injection suite: our binaries against a real control plane, one report line per fault class
	@test -x $(TOOLS_BIN)/kube-apiserver || { echo "run make tools first"; exit 1; }
	$(GO_TEST) -count=1 -v -timeout 25m -run '^TestFaults$$' ./test/faults/

test: lint test-unit test-integration test-faults test-e2e ## everything CI runs

BENCH_FLAGS ?=
bench: ## benchmarks; prints figures and ratios (IPAM benchmark: JSON report in _output/bench)
	@test -x $(TOOLS_BIN)/kube-apiserver -a -x $(TOOLS_BIN)/whereabouts || hack/build-tools.sh
	$(GO_TEST) -run='^$$' -bench=. -benchmem -benchtime=200ms ./internal/ip/...
	go run ./bench/ipam -out $(OUT)/bench $(BENCH_FLAGS)

bench-scale: build ## scale benchmark: agent memory (100 pools x 4,096 addresses, 5,000 endpoints), a 65,536-address block pool filled and emptied, apiserver watch bytes per allocation (100/1,000 watchers) (JSON report in _output/bench)
	@test -x $(TOOLS_BIN)/kube-apiserver || { echo "run make tools first"; exit 1; }
	go run ./bench/scale -agent $(OUT)/bin/spiderpool-agent -out $(OUT)/bench $(BENCH_SCALE_FLAGS)

FUZZTIME ?= 60s
fuzz: ## run every fuzz target for FUZZTIME each
	@hack/fuzz.sh $(FUZZTIME)

DEMO_FLAGS ?=
demo: build ## the public-cloud guide on a real cluster on this machine until Ctrl-C (root; DEMO_FLAGS=--verify checks and tears down, --scenario aws|overlay)
	@echo "demo: checking the tools the cluster needs (the first run builds them: about 25 minutes on 2 cores)"
	@hack/build-tools.sh @cluster
	@$(MAKE) --no-print-directory images
	$(OUT)/bin/spiderpool-sandbox up $(DEMO_FLAGS)

demo-down: ## remove a detached or crashed sandbox: namespaces, processes, state
	@test -x $(OUT)/bin/spiderpool-sandbox || $(MAKE) build
	$(OUT)/bin/spiderpool-sandbox down

# The chart deploys v<appVersion> when no tag is set: images get that tag unless IMAGE_VERSION says otherwise.
IMAGE_VERSION ?= v$(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}/\1/p' charts/spiderpool/Chart.yaml)
images: build ## image tarballs + images.json in _output/images, no container engine (IMAGE_VERSION)
	@hack/build-tools.sh macvlan ipvlan bridge ptp vlan loopback host-local static tuning portmap multus install_multus thin_entrypoint passthru
	go run ./hack/images -bin $(OUT)/bin -plugins-bin $(TOOLS_BIN) -tools-mod hack/tools -out $(OUT)/images -version $(IMAGE_VERSION)

clean: ## remove build output (keeps .tools)
	rm -rf $(OUT)
