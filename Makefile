# braid: `make lab` runs the demo lab, `make test` runs every test (needs root, Linux with MPTCP).
SWIFT ?= swift

.PHONY: build release test unit netns lab lab-unshaped bench clean

build:
	$(SWIFT) build

release:
	$(SWIFT) build -c release

unit:
	$(SWIFT) test

netns: build
	BRAID_BIN=$(CURDIR)/.build/debug/braid bash tests/netns/bonded-path.sh

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
