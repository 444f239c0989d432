# shoal: highly available MySQL without a central operator.
# `make demo` and `make test` work on a fresh Debian 12 machine as root; they install what they need.

SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)
export SHOAL_CACHE ?= /var/cache/shoal-test
STATICCHECK := $(SHOAL_CACHE)/bin/staticcheck-v0.8.2
GO_TEST_TIMEOUT ?= 20m
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: all build deps test test-go lint demo bench clean

all: build

build:
	go build -ldflags "-X main.version=$(VERSION)" -o bin/shoal ./cmd/shoal
	go build -o bin/rig ./test/cmd/rig

## deps: install servers, tools and caches the tests and the demo need (idempotent)
deps:
	bash test/rig/install.sh all

## test: install what is needed, then lint and run every test against real servers
test: deps lint test-go

test-go:
	go test -count=1 -timeout $(GO_TEST_TIMEOUT) ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' --cached --others --exclude-standard)); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	$(STATICCHECK) ./...

## demo: three real servers wired as a primary and two replicas, shown, then cleaned up
demo: deps build
	bash test/demo/demo.sh

## bench: failover and switchover timings on real clusters (SHOAL_BENCH_RUNS faults each, default 10)
bench: deps
	go test ./test/e2e -run '^$$' -bench . -benchtime 1x -timeout 60m | tee /tmp/shoal-bench.log
	@grep '^BENCH' /tmp/shoal-bench.log

clean:
	rm -rf bin
