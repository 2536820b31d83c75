# warden — the two commands first: `make run` and `make test`.
GO        ?= go
EXAMPLES  := $(patsubst examples/%/warden.yaml,%,$(wildcard examples/*/warden.yaml))
WASM      := $(foreach e,$(EXAMPLES),examples/$(e)/$(e).wasm)
GOFILES   := $(shell find . -name '*.go' -not -path './warden-data/*' 2>/dev/null)

.PHONY: all build examples run test check bench bench-flood fuzz clean

all: build

build: bin/warden examples

bin/warden: $(GOFILES) go.mod go.sum
	$(GO) build -o bin/warden ./cmd/warden

examples: $(WASM)

# Reactor examples are built as WASI reactors (-buildmode=c-shared), wagi
# examples as WASI commands; the manifest's abi decides.
examples/%.wasm: $(GOFILES) go.mod
	@dir=$(dir $@); \
	if grep -Eq '^abi:[[:space:]]*reactor' $$dir/warden.yaml; then mode=-buildmode=c-shared; else mode=; fi; \
	echo "build $@"; \
	GOOS=wasip1 GOARCH=wasm $(GO) build $$mode -o $@ ./$$dir

# Start the server on the embedded defaults (./warden-data), deploy the
# examples and print how to call them. Ctrl-C stops it gracefully.
run: build
	@scripts/run.sh

test:
	$(GO) test -race -count=1 ./...

check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt: not formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOOS=wasip1 GOARCH=wasm $(GO) vet ./sdk/... ./examples/...
	$(GO) test -count=1 ./internal/archtest/

# End-to-end figures: bin/warden server started as users start it, driven by
# wrk (installed from the distribution's package when missing), each figure a
# ratio against a bare net/http process measured in the same run; a run with
# any answer outside 2xx or a socket error prints no figure and fails. Then
# the hot paths' testing.B benchmarks.
bench: build
	@scripts/ensure-wrk.sh
	$(GO) run ./cmd/warden-bench
	$(GO) test -run='^$$' -bench=. -benchmem ./internal/sandbox ./internal/router ./internal/auth ./internal/events ./internal/manifest ./internal/jwtauth ./internal/ratelimit ./internal/dlp ./internal/validate ./internal/capability ./internal/secrets ./internal/egress

# The event log under attack: a 60 s flood of refused requests from 1,000
# loopback addresses while a calm client calls at 20 req/s.
bench-flood: build
	$(GO) run ./cmd/warden-bench flood -d 60s -sources 1000 -rate 2000

# Short runs of every fuzz target (longer: FUZZTIME=10m make fuzz).
FUZZTIME ?= 20s
fuzz:
	@for d in $$(grep -rl --include='*_test.go' '^func Fuzz' internal sdk | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -h '^func Fuzz' $$d/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
	    echo "== $$d $$f"; \
	    $(GO) test -run='^$$' -fuzz="^$$f\$$" -fuzztime=$(FUZZTIME) ./$$d || exit 1; \
	  done; \
	done

clean:
	rm -rf bin $(WASM)
