# meshq — build, run, test, install.
# `make run` and `make test` install the one system package they need
# (libevent-dev) when it is missing, so a fresh Debian machine needs nothing else.

SWIFT    ?= swift
PREFIX   ?= /usr/local
DESTDIR  ?=
SYSCONFDIR ?= /etc
NODES    ?= 1
SEEDS    ?= 500

BIN_RELEASE = .build/release
BIN_DEBUG   = .build/debug


.PHONY: all deps testdeps build release run test bench install uninstall clean

all: build

# libevent headers and pkg-config are all the project needs from the system.
deps:
	@if ! pkg-config --exists libevent 2>/dev/null; then \
		echo "installing libevent-dev (needs root)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libevent-dev pkg-config; \
	fi

# The metrics test validates /metrics with the Prometheus Python parser.
testdeps: deps
	@python3 -c 'import prometheus_client' 2>/dev/null || python3 -m pip install -q prometheus_client

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# A local cluster in the foreground (Ctrl-C stops it): client ports 7001..
run: release
	$(BIN_RELEASE)/meshq cluster --nodes $(NODES) --meshqd $(BIN_RELEASE)/meshqd

# Unit, storage, reactor and integration tests. The integration tests start
# the meshqd built here, so build it first.
test: testdeps
	$(SWIFT) build
	$(SWIFT) test

bench: release
	$(BIN_RELEASE)/meshq bench --local $(NODES) --messages 200000 --connections 64 --pipeline 16 --payload-bytes 100

install: release
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN_RELEASE)/meshqd $(BIN_RELEASE)/meshq $(DESTDIR)$(PREFIX)/bin/
	install -d $(DESTDIR)$(SYSCONFDIR)/meshq
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/meshq/meshq.conf ]; then \
		echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/meshq/meshq.conf"; \
	else \
		install -m 0644 etc/meshq/meshq.conf $(DESTDIR)$(SYSCONFDIR)/meshq/meshq.conf; \
	fi

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/meshqd $(DESTDIR)$(PREFIX)/bin/meshq

clean:
	rm -rf .build
