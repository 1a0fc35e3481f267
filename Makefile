# keyhole's developer entry points. `make demo` and `make test` are the
# README quickstart; CI (.ci/run) runs `make test` on a fresh machine.

GO            ?= go
BIN           := bin
KEYHOLE       := $(BIN)/keyhole
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS       := -s -w -X github.com/keyhole-sec/keyhole/internal/cli.Version=$(VERSION)
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
FUZZTIME      ?= 30s
RBAC_WORLDS   ?= 200

.PHONY: image pin-images all build demo test test-short control-plane promtool prometheus helm sealed-secrets vault graphviz bootstrap-policy lint fmt vet fuzz fuzz-rbac bench bench-git clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(KEYHOLE) ./cmd/keyhole

## demo: audit the bundled demo world (exit code 1 means "findings at or above --fail-on", which the demo has on purpose)
demo: build
	@$(KEYHOLE) audit --manifests testdata/demo --config testdata/demo-keyhole.yaml; code=$$?; \
	if [ $$code -eq 1 ]; then echo "(exit 1: findings at or above --fail-on high, as the demo intends)"; exit 0; fi; exit $$code

## test: every test, including the integration tests against a real kube-apiserver (built on first run)
## The differential test runs verbose, so that the number of triples it checked is printed.
test: control-plane promtool prometheus helm sealed-secrets vault graphviz
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /internal/differential)
	$(GO) test -count=1 -v ./internal/differential/

## test-short: unit tests only, no control plane
test-short: graphviz
	$(GO) test -short -count=1 ./...

## control-plane: build etcd, kube-apiserver, kube-controller-manager and kubectl from the Go module proxy (cached)
control-plane:
	@bash internal/testenv/build-control-plane.sh

## promtool: build promtool from the Go module proxy (cached), for the alert rule tests in internal/deploytest
promtool:
	@bash internal/deploytest/build-prometheus.sh promtool

## prometheus: build the Prometheus server from the Go module proxy (cached), for the end-to-end alert test in internal/deploytest
prometheus:
	@bash internal/deploytest/build-prometheus.sh prometheus

## helm: build helm v3.22.0 from the Go module proxy (cached), which the chart tests in internal/deploytest run (helm lint, helm template)
helm:
	@bash internal/deploytest/build-helm.sh

## sealed-secrets: build the Sealed Secrets controller v0.27.1 from the Go module proxy (cached), which the sealing tests run against the control plane
sealed-secrets:
	@bash internal/testenv/build-sealed-secrets.sh

## vault: build the HashiCorp Vault server v1.14.2 (MPL) from the Go module proxy (cached), which the keyhole migrate vault tests run in dev mode
vault:
	@bash internal/testenv/build-vault.sh

## graphviz: Graphviz's dot, which the test of explain's DOT output runs; installed from Debian when missing and we may (root, apt-get)
graphviz:
	@if command -v dot >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "graphviz: dot is missing; installing the graphviz package"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends graphviz >/dev/null && command -v dot >/dev/null; } || \
		{ echo "graphviz: could not install it; install Graphviz's dot (apt-get install graphviz) and run make again" >&2; exit 1; }; \
	else \
		echo "graphviz: the tests need Graphviz's dot; install it (apt-get install graphviz) and run make again" >&2; exit 1; \
	fi

## bootstrap-policy: regenerate the embedded bootstrap RBAC policy from a real control plane
bootstrap-policy: control-plane
	$(GO) run ./internal/bootstrap/gen -out internal/bootstrap/policy.yaml

$(GOLANGCI_LINT):
	@mkdir -p $(BIN)
	GOBIN=$(abspath $(BIN)) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	@mv $(BIN)/golangci-lint $(GOLANGCI_LINT)

## image: build the container image (needs a Docker engine); IMAGE names it
IMAGE ?= ghcr.io/keyhole-sec/keyhole:$(VERSION)
image:
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE) .

## pin-images: pin the Dockerfile's base images to their current digests (needs crane or docker buildx, and the registries)
pin-images:
	bash deploy/image/pin-images.sh Dockerfile

## lint: gofmt, go vet and golangci-lint
lint: $(GOLANGCI_LINT)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GOLANGCI_LINT) run ./...

## fuzz: run each fuzz target for FUZZTIME
fuzz:
	$(GO) test ./internal/source/manifests/ -run '^$$' -fuzz FuzzLoad -fuzztime $(FUZZTIME)
	$(GO) test ./internal/rbac/ -run '^$$' -fuzz FuzzRuleAllows -fuzztime $(FUZZTIME)
	$(GO) test ./internal/config/ -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./internal/baseline/ -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)

## fuzz-rbac: the differential test against SubjectAccessReview over RBAC_WORLDS random worlds
fuzz-rbac: control-plane
	KEYHOLE_RBAC_WORLDS=$(RBAC_WORLDS) $(GO) test -count=1 -timeout 2h -run TestDifferential ./internal/differential/ -v

## bench: the benchmarks recorded in docs/benchmarks.md
bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x ./internal/analysis/

## bench-git: keyhole against gitleaks on a generated 20k-commit repository (docs/benchmarks.md; installs gitleaks)
bench-git:
	KEYHOLE_GIT_BENCH=1 KEYHOLE_GIT_BENCH_ROUNDS=5 $(GO) test -run '^$$' -bench BenchmarkHistory -benchtime 1x -timeout 60m ./internal/source/git/

clean:
	rm -rf $(BIN)
