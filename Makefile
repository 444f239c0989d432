# shoal: highly available MySQL without a central operator.
# `make demo` and `make test` work on a fresh Debian 12 machine as root; they install what they need.

SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)
export SHOAL_CACHE ?= /var/cache/shoal-test
STATICCHECK := $(SHOAL_CACHE)/bin/staticcheck-v0.8.2
GO_TEST_TIMEOUT ?= 45m
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: all build deps test test-go lint demo bench clean model-check model-mutations model-mutation-lease model-mutation-cas model-mutation-relay mutation chaos soak

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

## chaos: random faults on real clusters, both flavors: CYCLES per flavor and cluster size, SEED to replay, MEMBERS=3,5
CYCLES ?= 100
MEMBERS ?= 3
chaos: deps
	set -o pipefail; SHOAL_CHAOS_CYCLES=$(CYCLES) SHOAL_CHAOS_SEED=$(SEED) SHOAL_CHAOS_MEMBERS=$(MEMBERS) \
	  go test ./test/chaos -run TestChaos -count=1 -timeout 0 -v 2>&1 | tee /tmp/shoal-chaos.log | grep --line-buffered -E '^CHAOS|cycle [0-9]+: .*healed|split brain|FAIL|^ok'

## soak: pauses of random agents and mysqlds (0.5-2 s) with a core busy, both flavors; no failover may follow (SOAK=30m)
SOAK ?= 30m
soak: deps
	set -o pipefail; SHOAL_SOAK=$(SOAK) SHOAL_CHAOS_SEED=$(SEED) go test ./test/chaos -run TestSoak -count=1 -timeout 0 -v 2>&1 | tee /tmp/shoal-soak.log | grep --line-buffered -E '^SOAK|killed|FAIL|^ok'

## bench: failover and switchover timings, idle agent cost, re-seeding and backups, on real clusters (SHOAL_BENCH_RUNS faults each, default 10)
BACKUP_MB ?= 5000
bench: deps
	SHOAL_BENCH_BACKUP_MB=$(BACKUP_MB) go test -p 1 ./test/e2e ./agent/gossip ./test/kube ./backup -run '^$$' -bench . -benchtime 1x -timeout 240m | tee /tmp/shoal-bench.log
	@grep '^BENCH' /tmp/shoal-bench.log

## model-check: spin on the failover protocol: 3 members exhaustive (one fault, either first leader; a stalled primary renewing as with ha.lease < ha.detection_timeout), bitstate with two faults and with 5 members
MODEL := bash test/model/check.sh
model-check:
	@command -v spin >/dev/null || bash test/rig/install.sh all
	$(MODEL) pass full -DMAXF=1 -DLEADER=0
	$(MODEL) pass full -DMAXF=1 -DLEADER=1
	$(MODEL) pass full -DMAXF=1 -DLEADER=0 -DSTALL_RENEW
	SHOAL_MODEL_BITS=26 $(MODEL) pass bitstate -DMAXF=2
	SHOAL_MODEL_BITS=26 $(MODEL) pass bitstate -DN=5 -DMAXF=1

## model-mutations: each mutation of the protocol must give a counterexample (trail printed)
model-mutations: model-mutation-lease model-mutation-cas model-mutation-relay
model-mutation-lease:
	$(MODEL) fail full -DMAXF=1 -DNO_LEASE_WAIT
model-mutation-cas:
	$(MODEL) fail bitstate -DMAXF=2 -DNO_EPOCH_CAS
model-mutation-relay:
	$(MODEL) fail full -DMAXF=1 -DNO_RELAY_WAIT

## mutation: deleting any decision branch or assignment of agent/ha must fail a test (minutes; not part of test)
mutation:
	go run ./test/cmd/mutate -pkg agent/ha

clean:
	rm -rf bin

## kube-up / kube-down: the Kubernetes test rig (3 nodes, real kubelets and containerd; KUBE_NODES=n)
KUBE_NODES ?= 3
kube-up: deps
	go run ./test/cmd/kube -nodes $(KUBE_NODES) up
kube-down:
	go run ./test/cmd/kube down
.PHONY: kube-up kube-down

## demo-k8s: the Kubernetes walk-through: the rig's 3 nodes, the chart installed, the primary's pod deleted, the Service following it, then the primary's node lost and healed (FLAVOR=mysql for MySQL)
demo-k8s: deps
	bash test/demo/demo-k8s.sh
.PHONY: demo-k8s
