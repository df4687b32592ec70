# hvctl — make targets. The README's two set-up commands are `make demo`
# and `make test`.
GO       ?= go
BIN      := bin/hvctl
PKGS     := ./...
FUZZTIME ?= 15s
VERSION  ?= 0.1.0-dev
LDFLAGS  := -X github.com/hvctl/hvctl/provision.Version=$(VERSION)

.PHONY: build test demo bench fuzz vet fmt clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/hvctl

# Every test: unit, golden, crash (SIGKILL) and, as root, the real-system
# tests. With HVCTL_E2E=1 a skipped root test is a failure. Packages run
# one at a time (-p 1): the real-system tests of several packages check
# that they leave no namespace, link or nft table on the machine, and
# would see each other's.
test: build
	./scripts/deps.sh test || [ "$$(id -u)" != 0 ]
	$(GO) vet $(PKGS)
	$(GO) test -p 1 -count=1 -timeout 40m $(PKGS)

# The main job: a multi-site cluster, plan -> up -> status -> down.
demo: build
	./scripts/deps.sh demo
	./scripts/demo.sh

# Benchmarks; figures go to docs/benchmarks.md.
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./provision/... ./templates/... ./overlay/...
	./bench/plan.sh

# Run every fuzz target for FUZZTIME; new corpus entries land in testdata/fuzz.
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -l -w $$(git ls-files '*.go')

clean:
	rm -rf bin
