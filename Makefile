# xdpcache: see README.md. Targets that load BPF or create namespaces need root.
GO      ?= go
BIN     ?= bin/xdpcache
PKGS    ?= ./...
# Tests that load BPF programs share kernel state (pins, namespaces): run
# packages one at a time; each test cleans up after itself.
TESTFLAGS ?= -count=1 -p 1 -timeout 30m

.PHONY: all build generate check-generate test test-short test-offload test-lab fuzz fuzz-diff check-long bench bench-bmc demo vet clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/xdpcache

# The BPF objects: the cache's (bpf/), the benchmark's reply tap and request generator, the libxdp dispatcher and its test program.
GENERATED ?= bpf/ internal/replytap/ internal/xdpgen/ offload/dispatch/ offload/dispatch/dispatchtest/

generate:
	$(GO) generate $(addprefix ./,$(GENERATED))

# Regenerate into the work tree and fail if anything changed: the committed
# *_bpfel.go/.o must match the C sources (go install builds without clang).
check-generate: generate
	@if ! git diff --quiet -- $(GENERATED); then \
		echo "generated BPF files differ from the committed ones: run 'make generate' and commit"; \
		git --no-pager diff --stat -- $(GENERATED); exit 1; fi

vet:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)

test: vet
	$(GO) test $(TESTFLAGS) $(PKGS)

# Each fuzz target for a bounded time: the BPF programs through
# BPF_PROG_TEST_RUN (root), then mcproto's reply parsers.
FUZZTIME ?= 10s
# A target that fails is run once more: Go's fuzzer sometimes ends a run with
# "context deadline exceeded" and no crasher (its workers not stopped within
# -fuzztime on a loaded machine); a real crasher is written to testdata/fuzz,
# which the second run replays first, so it fails again.
fuzz:
	for f in FuzzXDPPayload FuzzXDPFrame FuzzTCReply; do \
		$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) ./bpf/ || \
		$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) ./bpf/ || exit 1; done
	for f in FuzzParseGetReply FuzzParseBinPacket; do \
		$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) ./internal/mcproto/ || \
		$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) ./internal/mcproto/ || exit 1; done

# The differential harness (bpf/difftest_*_test.go, issue 13): generated
# command streams against a real memcached and through the XDP program, for
# DIFFTIME (or DIFFCOUNT streams when DIFFTIME is empty), from DIFFSEED
# (default: the clock; a failure prints the seed that replays it). root.
DIFFTIME  ?= 10m
DIFFCOUNT ?=
DIFFSEED  ?= $(shell date +%s)
fuzz-diff:
	$(GO) test -count=1 -timeout 0 -v -run '^TestDiffRandom$$' ./bpf/ -args -diff.seed $(DIFFSEED) -diff.maxfail 20 \
		$(if $(DIFFCOUNT),-diff.count $(DIFFCOUNT),-diff.time $(DIFFTIME))

# The consistency checker with 1M operations per XDP mode and settings (default,
# no write hold): 4M in all.
check-long:
	$(GO) test -count=1 -timeout 6h -run TestConsistencyUnderLoad -v ./internal/consistency/ -args -ops=1000000

# Hardware-offload tests (TestNetdevsim*) in a QEMU guest with netdevsim; see
# scripts/offload-lab.sh for its cache and OFFLOAD_LAB_* settings (root).
test-offload:
	GO=$(GO) scripts/offload-lab.sh

# The driver and kernel matrix (docs/lab.md): the netdevsim tests above, then
# one QEMU guest per kernel (Debian 12's 6.1, bookworm-backports' 6.12) with
# virtio-net, e1000, e1000e, vmxnet3, a bond, tun and netdevsim, running
# ./test/lab against the xdpcache binary, memcached and iproute2 (root).
# LAB_KERNELS="6.1" limits the kernels; LAB_UPDATE=1 rewrites the expected
# reports in test/lab/testdata/.
LAB_KERNELS ?=
test-lab: test-offload
	GO=$(GO) scripts/lab.sh $(LAB_KERNELS)

test-short:
	$(GO) test -short $(TESTFLAGS) $(PKGS)

# Micro (kernel ns per packet, BPF_PROG_TEST_RUN) and end to end (veth pair,
# real memcached, mcload's engine): memcached alone vs native vs generic XDP.
bench:
	$(GO) test -run '^$$' -bench Report -benchtime 1x -count 1 ./bpf/
	$(GO) test -run '^$$' -bench EndToEnd -benchtime 1x -count 1 -timeout 20m ./internal/loadgen/

# BMC's XDP program on the same frames as ours (docs/performance.md, "BMC on
# the same frames"): BMC_OBJ is an object built from BMC's bmc/bmc_kern.c
# outside this repository.
bench-bmc:
	@test -n "$(BMC_OBJ)" || { echo "usage: make bench-bmc BMC_OBJ=/path/to/bmc.o (built from BMC's bmc/bmc_kern.c; docs/performance.md)" >&2; exit 2; }
	XDPCACHE_BENCH_BMC=$(abspath $(BMC_OBJ)) XDPCACHE_BENCH_ONLY="GET hit, 16,GET miss,2-key" \
		$(GO) test -run '^TestBMCObjectAnswers$$' -bench Report -benchtime 1x -count 1 ./bpf/

demo:
	.ci/deps
	$(GO) build -o $(BIN) ./cmd/xdpcache
	./$(BIN) demo

clean:
	rm -rf bin
