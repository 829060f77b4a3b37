# braid: `make lab` runs the demo lab, `make test` runs every test (needs root, Linux with MPTCP).
SWIFT ?= swift

.PHONY: build release test unit netns lab lab-unshaped bench clean

build:
	$(SWIFT) build

release:
	$(SWIFT) build -c release

unit:
	$(SWIFT) test

# Every namespace suite runs even when an earlier one fails; the target fails if any did.
NETNS_ENV = BRAID_BIN=$(CURDIR)/.build/debug/braid LAB_TOOL=$(CURDIR)/.build/debug/braid-lab
netns: build
	@status=0; \
	for t in bonded-path delay-line failover; do \
		echo "== tests/netns/$$t.sh"; \
		$(NETNS_ENV) bash tests/netns/$$t.sh || status=1; \
	done; \
	exit $$status

test: unit netns

lab: release
	bash lab/run.sh

lab-unshaped: release
	bash lab/run.sh --unshaped

# Benchmark against redsocks+dante, shadowsocks and direct paths (not a test; see bench/bench.sh).
bench: release
	bash bench/bench.sh

clean:
	rm -rf .build

# libFuzzer targets for the Convert, control and UCI parsers, FUZZ_SECONDS each (Fuzz/run.sh).
.PHONY: fuzz
FUZZ_SECONDS ?= 60
fuzz:
	bash Fuzz/run.sh all $(FUZZ_SECONDS)
