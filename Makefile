# braid: `make lab` runs the demo lab, `make test` runs every test (needs root, Linux with MPTCP).
SWIFT ?= swift

.PHONY: build release test unit netns soak lab lab-unshaped bench image image-test deps clean config

# What building and testing need from Debian, installed once by tools/install-deps.sh (apt-get
# update first) and again when that script changes: `make test` and `make lab` on a fresh Debian 12
# with Swift need nothing else.
DEPS_STAMP = .build/.deps-installed
$(DEPS_STAMP): tools/install-deps.sh
	bash tools/install-deps.sh
	mkdir -p $(@D) && touch $@

deps: $(DEPS_STAMP)

build: $(DEPS_STAMP)
	$(SWIFT) build

release: $(DEPS_STAMP)
	$(SWIFT) build -c release

unit: $(DEPS_STAMP)
	$(SWIFT) test

# Every namespace suite runs even when an earlier one fails; the target fails if any did.
NETNS_ENV = BRAID_BIN=$(CURDIR)/.build/debug/braid LAB_TOOL=$(CURDIR)/.build/debug/braid-lab
netns: build
	@status=0; \
	for t in bonded-path delay-line failover backup-middlebox appliance reload untouchable control-channel hostile office \
		status-page metrics families rules store steering image quota operator-rules servers fleet uplink-subflows \
		soak; do \
		echo "== tests/netns/$$t.sh"; \
		$(NETNS_ENV) bash tests/netns/$$t.sh || status=1; \
	done; \
	exit $$status

test: unit netns

# The soak: 10 minutes of connection churn, resets, uplink flaps and reloads, then both daemons
# back to their baseline (tests/netns/soak.sh). `make test` runs its 2-minute version (the netns
# list above: soak.sh's own default SOAK_SECONDS, 120).
SOAK_SECONDS ?= 600
soak: build
	SOAK_SECONDS=$(SOAK_SECONDS) $(NETNS_ENV) bash tests/netns/soak.sh

# Config/ and docs/configuration.md are rendered from the configuration schema; a unit test fails when
# they are not current.
config: build
	.build/debug/braid config defaults gateway > Config/gateway.conf
	.build/debug/braid config defaults concentrator > Config/concentrator.conf
	mkdir -p docs && .build/debug/braid config docs > docs/configuration.md

lab: release
	bash lab/run.sh

lab-unshaped: release
	bash lab/run.sh --unshaped

# Benchmark against redsocks+dante, shadowsocks and direct paths (not a test; see bench/bench.sh).
bench: release
	bash bench/bench.sh

# A simulated fleet against one concentrator: memory per gateway, handshakes per second, 2,000
# gateways back after a restart, with the uci store and PostgreSQL (not a test; see bench/fleet.sh).
.PHONY: bench-fleet
bench-fleet: release
	bash bench/fleet.sh

# Bootable raw disk image of a generic x86-64 appliance, .build-image/braid-ROLE-x86-64.img
# (board/x86-64/README.md). IMAGE_CONFIG=FILE bakes FILE in as /etc/config/braid, IMAGE_PSK=FILE
# as its pre-shared key, IMAGE_LAN=ADDRESS/PREFIX is the gateway's LAN address.
IMAGE_ROLE ?= gateway
IMAGE_ARGS = --role $(IMAGE_ROLE) $(if $(IMAGE_CONFIG),--config $(IMAGE_CONFIG)) \
	$(if $(IMAGE_PSK),--psk $(IMAGE_PSK)) $(if $(IMAGE_LAN),--lan $(IMAGE_LAN))
image: $(DEPS_STAMP)
	bash board/x86-64/build-image.sh $(IMAGE_ARGS)

# Builds the gateway image and boots it in QEMU between namespaces (tests/netns/image.sh); part of
# `make test` too.
image-test: build
	$(NETNS_ENV) bash tests/netns/image.sh

clean:
	rm -rf .build

# libFuzzer targets for the Convert, control and UCI parsers, FUZZ_SECONDS each (Fuzz/run.sh).
.PHONY: fuzz
FUZZ_SECONDS ?= 60
fuzz:
	bash Fuzz/run.sh all $(FUZZ_SECONDS)
