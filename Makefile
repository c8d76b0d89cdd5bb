# meshq — build, run, test, install.
# `make run` and `make test` install the system packages they need
# (libevent-dev, libssl-dev; openssl for the TLS tests) when missing, so a
# fresh Debian machine needs nothing else.

SWIFT    ?= swift
PREFIX   ?= /usr/local
DESTDIR  ?=
SYSCONFDIR ?= /etc
NODES    ?= 3
BENCH_NODES ?= 3
SEEDS    ?= 500
DURATION ?= 60
RATE     ?= 40
# make bench-peers: rounds, and seconds per run
ROUNDS   ?= 3
SECONDS  ?= 5
# 1: `make test` also runs the scripted partitions and a 60-second `make chaos`
# (as root; otherwise it says why not). 0 leaves them out.
CHAOS_IN_TEST ?= 1

# Test builds compile the test-only hooks (planted bugs, fault switches);
# release builds (run, bench, install) never contain them.
TESTFLAGS = -Xswiftc -DMESHQ_TESTING
# The simulator's build: optimised, with the hooks and @testable, in its own
# directory (never the release build that run, bench and install use).
SIMFLAGS = -c release -Xswiftc -enable-testing $(TESTFLAGS) --scratch-path .build-sim

BIN_RELEASE = .build/release
BIN_DEBUG   = .build/debug


.PHONY: all deps testdeps build release run test docs-check test-growth warnings bench bench-tls bench-restart bench-catchup bench-peers peerdeps install install-files uninstall sim sim-planted clean \
	chaos chaosdeps test-chaos test-chaos-checker partitions fuzz test-asan sanitized

all: build

# libevent (with its OpenSSL bufferevents, in libevent-dev on Debian),
# OpenSSL's headers and pkg-config are all the project needs from the system.
deps:
	@if ! pkg-config --exists libevent libevent_openssl openssl 2>/dev/null; then \
		echo "installing libevent-dev libssl-dev (needs root)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libevent-dev libssl-dev pkg-config; \
	fi

# The metrics test validates /metrics with the Prometheus Python parser.
# and the unit with systemd-analyze.
testdeps: deps
	@python3 -c 'import prometheus_client' 2>/dev/null || python3 -m pip install -q prometheus_client
	@command -v systemd-analyze >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq systemd; }
	@command -v openssl >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq openssl; }

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# A local cluster (3 nodes unless NODES=) in the foreground (Ctrl-C stops it): client ports 7001..
run: release
	$(BIN_RELEASE)/meshq cluster --nodes $(NODES) --meshqd $(BIN_RELEASE)/meshqd

# Unit, storage, reactor and integration tests, then the simulator, then
# bounded growth at the issue's full scale (2,000,000 enqueue+ack pairs
# against the release meshqd, about 2 minutes). The integration tests start
# the meshqd built here, so build it first; the simulator runs after them, so
# its load never shares the two cores with real clusters whose timings are fast.
# The simulator, planted bugs and transcripts run in the optimised test build
# (.build-sim, as `make sim`): about 20x faster than the debug build, which
# pays for its own compile several times over.
test: testdeps test-chaos-checker docs-check
	$(SWIFT) build $(TESTFLAGS)
	$(SWIFT) test $(TESTFLAGS) --skip 'SimulationTests|PlantedBugTests|BoundedGrowthTests|TranscriptTests'
	SWIFT_DETERMINISTIC_HASHING=1 MESHQ_SIM_SEEDS=$(SEEDS) $(SWIFT) test $(SIMFLAGS) --filter 'SimulationTests|PlantedBugTests|TranscriptTests'
	$(MAKE) test-growth
ifeq ($(CHAOS_IN_TEST),1)
	$(MAKE) test-chaos
endif

# The unit and integration tests (not the simulator) under AddressSanitizer,
# in their own build directory; the meshqd and meshq the integration tests
# start are the sanitized ones too. Every sanitizer report (from any process)
# lands in $(SANDIR)/reports/, and a report fails the target even when the
# test that caused it passed. No UBSan run: swiftc refuses -sanitize=undefined
# on Linux, and Swift's own overflow/bounds checks trap in every build of ours
# (README, "Sanitizers"). Not part of `make test`: about 8 minutes of
# build from a clean tree, then 2 of tests.
# killLeaderUnderPipelinedLoad...: under ASan's slowdown the returning leader's
# recovery of 10,000 entries outlasts leader_timeout_ms again and again
# (elections churn past the test's 30 s); the bench test's timed leadership
# loses a round now and then under that slowdown. No sanitizer report (README).
SAN_SKIP = 'SimulationTests|PlantedBugTests|killLeaderUnderPipelinedLoadLosesNothingAcknowledged|benchOnALocalThreeNodeClusterVerifiesItsOwnWork'
SAN ?= address
SANDIR ?= .build-asan

test-asan: testdeps
	$(MAKE) sanitized SAN=address SANDIR=.build-asan

sanitized:
	rm -rf $(SANDIR)/reports && mkdir -p $(SANDIR)/reports
	$(SWIFT) build $(TESTFLAGS) --scratch-path $(SANDIR) --sanitize=$(SAN)
	MESHQD_BIN=$(CURDIR)/$(SANDIR)/debug/meshqd \
	ASAN_OPTIONS=log_path=$(CURDIR)/$(SANDIR)/reports/asan:detect_leaks=0 \
		$(SWIFT) test $(TESTFLAGS) --scratch-path $(SANDIR) --sanitize=$(SAN) --skip $(SAN_SKIP)
	@if [ -n "$$(ls -A $(SANDIR)/reports)" ]; then echo "$(SAN) sanitizer reports:"; \
		head -50 $(SANDIR)/reports/*; exit 1; else echo "$(SAN): no sanitizer reports"; fi

# Bounded growth at the issue's scale: one task leased while 2,000,000
# enqueue+ack pairs of 100-byte tasks pass, against the release meshqd and its
# real 64 MiB compaction segment, on one node and on three (part of `make
# test`; `swift test --filter BoundedGrowthTests` alone runs 100,000 pairs on
# the debug build; see Tests/IntegrationTests/BoundedGrowthTests.swift).
test-growth: release
	$(SWIFT) build --build-tests $(TESTFLAGS)
	MESHQD_BIN=$(CURDIR)/$(BIN_RELEASE)/meshqd MESHQ_GROWTH_PAIRS=2000000 MESHQ_GROWTH_PAYLOAD=100 \
		MESHQ_GROWTH_SEGMENT=67108864 $(SWIFT) test $(TESTFLAGS) --skip-build --filter BoundedGrowthTests

# Every log event, config key, verb, reply, error code, metric, peer message
# kind and STATUS key the code has is documented in docs/ (part of `make test`).
docs-check:
	bash scripts/check-docs.sh

# Zero compiler warnings in our own targets, in debug (tests included) and in
# release; CI runs it before `make test` (whose build it leaves ready).
warnings: deps
	SWIFT=$(SWIFT) .ci/check-warnings --build-tests $(TESTFLAGS)
	SWIFT=$(SWIFT) .ci/check-warnings -c release

# The chaos checker's unit tests (a violating history per property), the report's and
# the nemesis schedule's: fast, no root.
test-chaos-checker:
	cd chaos && python3 -m unittest test_checker test_report test_nemesis

# Real meshqd processes in network namespaces under a seeded nemesis, judged by
# chaos/checker.py (README, "Chaos testing"). Needs root. Replay: make chaos SEED=n
# Options: NODES=3|5 DURATION=seconds SEED=n RATE=commands/s
chaos: release chaosdeps
	python3 chaos/run.py --nodes $(NODES) --duration $(DURATION) --rate $(RATE) \
		$(if $(SEED),--seed $(SEED)) --meshqd $(BIN_RELEASE)/meshqd

chaosdeps:
	@command -v nft >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		echo "installing nftables (needs root)"; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nftables; }

# A 60-second chaos run when root (CI is), otherwise a note saying why it is
# skipped; first a check that the nftables faults drop exactly what they should.
test-chaos: chaosdeps
	@if [ "$$(id -u)" = 0 ]; then python3 -m unittest discover -s chaos -p 'test_net.py' && \
		$(MAKE) partitions && $(MAKE) chaos DURATION=60; \
	else echo "test-chaos: skipped, needs root (network namespaces, nftables, tmpfs)"; fi

# Scripted silent network faults (nftables drops between namespaces): the
# leader isolated, a minority partitioned, one link cut. Needs root.
partitions: release chaosdeps
	python3 chaos/partitions.py --meshqd $(BIN_RELEASE)/meshqd

# The deterministic cluster simulator over many seeds (optimised build).
# Replay one: make sim SEED=1234; harsher faults: make sim PROFILE=hostile;
# seeds FIRST.. instead of 1000.. (split a long run over processes): FIRST=N
sim: deps
	SWIFT_DETERMINISTIC_HASHING=1 MESHQ_SIM_SEEDS=$(SEEDS) $(if $(SEED),MESHQ_SIM_SEED=$(SEED)) $(if $(FIRST),MESHQ_SIM_FIRST=$(FIRST)) $(if $(PROFILE),MESHQ_SIM_PROFILE=$(PROFILE)) $(SWIFT) test $(SIMFLAGS) \
		--filter 'SimulationTests|PlantedBugTests'

# How many of 200 seeds catch each planted bug (the figures in the README).
sim-planted: deps
	SWIFT_DETERMINISTIC_HASHING=1 MESHQ_PLANTED_RATE_SEEDS=$(or $(PLANTED_SEEDS),200) $(SWIFT) test $(SIMFLAGS) \
		--filter 'PlantedBugTests/detectionRates'

# Coverage-guided fuzzing of every parser of outside bytes (fuzz/README.md):
# the client line framer and parser, peer frames, the config, log records,
# snapshots and log-file recovery. libFuzzer ships with the Swift toolchain.
# make fuzz FUZZ_SECONDS=600 FUZZ_TARGETS="lines peer"
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= lines peer config storage
FUZZFLAGS = -c release --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -DMESHQ_FUZZ \
	-Xswiftc -use-ld=lld

fuzz: deps
	$(SWIFT) build $(FUZZFLAGS) --product meshq-fuzz
	fuzz/run.sh .build-fuzz/release/meshq-fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

bench: release
	$(BIN_RELEASE)/meshq bench --local $(BENCH_NODES) --messages 200000 --connections 64 --pipeline 16 --payload-bytes 100

# The same run with everything inside TLS (mutual TLS between the nodes, the
# clients on the client_tls ports), certificates from a throwaway CA; then the
# plain run again, so the two figures come from the same machine and minutes.
bench-tls: release
	@dir=$$(mktemp -d) && scripts/tls-certs.sh $$dir && \
	$(BIN_RELEASE)/meshq bench --local $(BENCH_NODES) --local-tls $$dir --messages 200000 --connections 64 --pipeline 16 --payload-bytes 100; \
	rc=$$?; rm -rf $$dir; [ $$rc = 0 ] && $(MAKE) --no-print-directory bench

# A node holding 1,000,000 ready 100-byte tasks: resident memory per task, and
# the time from exec to serving again after a restart (README, figures).
bench-restart: release
	$(BIN_RELEASE)/meshq bench --local 1 --restart --messages 1000000 --connections 16 --pipeline 64 --payload-bytes 100

# Catch-up throughput: a follower 1 GiB behind on loopback, in MB/s
# (CATCHUP_ARGS=--payload-bytes 8192 makes it a chunked snapshot).
bench-catchup: release
	python3 scripts/catchup-bench.py --meshqd $(BIN_RELEASE)/meshqd --gib 1 $(CATCHUP_ARGS)

# meshq against Redis (a primary and two replicas, LPUSH + WAIT 1) and NATS
# JetStream (3 servers, a file stream with 3 replicas), each on loopback, all
# driven by one C client (bench/loadgen.c): 1x1, 16x1 and 64x16 (and meshq 1x1
# through a follower), systems alternating, ROUNDS rounds of SECONDS each;
# a table of medians and ranges (scripts/bench-peers.sh, docs/performance.md).
bench-peers: release peerdeps
	MESHQD=$(BIN_RELEASE)/meshqd ROUNDS=$(ROUNDS) SECONDS=$(SECONDS) bash scripts/bench-peers.sh

peerdeps:
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		echo "installing redis-server (needs root)"; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server; }
	@command -v nats-server >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		echo "installing nats-server (needs root)"; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nats-server; }
	@command -v cc >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		echo "installing gcc (needs root)"; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq gcc; }

UNITDIR    ?= /lib/systemd/system
SYSUSERSDIR ?= /usr/lib/sysusers.d
MANDIR     ?= $(PREFIX)/share/man
BUILD      ?= $(BIN_RELEASE)

install: release
	$(MAKE) install-files BUILD=$(BIN_RELEASE)

# The layout alone, from an existing build (the tests call it with the debug
# build and a DESTDIR). With no DESTDIR, as root, it also creates the user.
install-files:
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(BUILD)/meshqd $(BUILD)/meshq $(DESTDIR)$(PREFIX)/bin/
	sed 's|/usr/local/bin/|$(PREFIX)/bin/|g' systemd/meshqd@.service > $(DESTDIR)$(UNITDIR)/meshqd@.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/meshqd@.service
	install -m 0644 systemd/meshq.sysusers $(DESTDIR)$(SYSUSERSDIR)/meshq.conf
	install -m 0644 man/meshq.1 $(DESTDIR)$(MANDIR)/man1/meshq.1
	install -m 0644 man/meshq.conf.5 $(DESTDIR)$(MANDIR)/man5/meshq.conf.5
	install -m 0644 man/meshqd.8 $(DESTDIR)$(MANDIR)/man8/meshqd.8
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && ! getent passwd meshq >/dev/null; then \
		if command -v systemd-sysusers >/dev/null; then systemd-sysusers $(SYSUSERSDIR)/meshq.conf; \
		else useradd --system --home-dir /var/lib/meshq --shell /usr/sbin/nologin meshq; fi; \
	fi
	@# The secrets' directory (cluster_secret_file, client_token_file): the
	@# meshq group reads it, nobody else; group meshq only where it exists.
	install -d -m 0750 $(DESTDIR)$(SYSCONFDIR)/meshq
	@if [ "$$(id -u)" = 0 ] && getent group meshq >/dev/null; then chown root:meshq $(DESTDIR)$(SYSCONFDIR)/meshq; \
	else echo "note: no meshq group here: $(DESTDIR)$(SYSCONFDIR)/meshq left to $$(id -un)"; fi
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/meshq/meshq.conf ]; then \
		echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/meshq/meshq.conf"; \
	else \
		install -m 0644 etc/meshq/meshq.conf $(DESTDIR)$(SYSCONFDIR)/meshq/meshq.conf; \
	fi

# Keeps the config and the data: an operator removes those on purpose.
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/meshqd $(DESTDIR)$(PREFIX)/bin/meshq \
		$(DESTDIR)$(UNITDIR)/meshqd@.service $(DESTDIR)$(SYSUSERSDIR)/meshq.conf \
		$(DESTDIR)$(MANDIR)/man1/meshq.1 $(DESTDIR)$(MANDIR)/man5/meshq.conf.5 $(DESTDIR)$(MANDIR)/man8/meshqd.8

clean:
	rm -rf .build .build-fuzz .build-asan .build-sim chaos-out
