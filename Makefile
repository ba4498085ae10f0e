# Monoscape on OpenStack, as code. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export CONTAINERS_CONF ?= $(HOME)/.cache/monoscape/containers.conf
export PATH := $(CURDIR)/.venv/bin:$(PATH)

PACKAGES := build/packages/hello-1.0.0.zip build/packages/hello-2.0.0.zip build/packages/hello-2.0.1-broken.zip
APP_SOURCES := $(wildcard apps/hello/src/*.cs apps/hello/site/*) scripts/monoscape_package.py plugins/module_utils/monoscape_package.py

.PHONY: help setup packages test lint unit molecule lab-up lab-down lab-status demo bench bench-site soak clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: ## install the toolchain (apt, venv, collections) and the podman test-host image
	scripts/bootstrap.sh
	scripts/test-hosts.sh

packages: $(PACKAGES) ## build the sample app packages (Monoscape zips) into build/packages

build/packages/hello-%-broken.zip: $(APP_SOURCES)
	python3 scripts/monoscape_package.py build apps/hello --version $*-broken --define BROKEN -o $@ >/dev/null

build/packages/hello-%.zip: $(APP_SOURCES)
	python3 scripts/monoscape_package.py build apps/hello --version $* -o $@ >/dev/null

test: ## everything CI runs: setup, lint, unit, molecule and lab tests (pytest summary last)
	scripts/test.sh

lint: setup ## ansible-lint (production), yamllint, ruff, ansible-doc, syntax checks
	pytest -m lint

unit: setup ## unit tests (no services)
	pytest -m unit

molecule: setup packages ## molecule scenarios on podman test hosts
	pytest -m molecule

lab-up: setup ## start the lab OpenStack cloud (idempotent; installs on first use)
	lab/labctl up

lab-down: ## stop the lab cloud (only what it started)
	lab/labctl down

lab-status: ## which lab services answer
	lab/labctl status

demo: setup packages ## the main job on the embedded lab (see README)
	scripts/demo.sh

bench: lab-up ## inventory plugin benchmark on the lab cloud: 500 servers, 3 clouds (a measurement, not a test)
	python bench/inventory_bench.py

soak: setup packages ## failover under a bounded load on the lb_deploy hosts: Mono race, rolling update, instance and node kill (a measurement, not a test)
	python bench/soak.py

bench-site: lab-up ## re-run cost: first site.yml, no-op, scale-out, scale-in; then no-op site.yml and status.yml with 300 other servers vs none
	python bench/site_bench.py

clean: ## remove build output (caches under ~/.cache/monoscape stay)
	rm -rf build .pytest_cache .ruff_cache
