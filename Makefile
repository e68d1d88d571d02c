# tapwire — every target installs what it needs first (idempotent, cached under $(CACHE)).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
CACHE ?= $(HOME)/.cache/tapwire
KAFKA_VERSION ?= 4.1.1
export TAPWIRE_KAFKA_HOME ?= $(CACHE)/kafka-$(KAFKA_VERSION)
export UV_PYTHON_DOWNLOADS := never
UV := $(PYTHON) -m uv
PYTEST_ARGS ?=
SOAK_ARGS ?=

.PHONY: help deps infra kafka postgres clients run test bench soak lint k8s clean

help:
	@echo "make run    - start the embedded suite (all services, one process)"
	@echo "make test   - install everything, start Kafka + PostgreSQL, run the whole suite"
	@echo "make bench  - run the benchmarks, write docs/benchmarks.md"
	@echo "make soak   - 5-minute fault soak, distributed mode on this machine (Kafka, PostgreSQL, ClickHouse rig,"
	@echo "              2 gateways, 2 loaders; broker killed, ClickHouse down 60 s, PostgreSQL restarted, a loader"
	@echo "              and a gateway SIGKILLed); prints soak_acked/stored/lost/duplicates/5xx as its JSON last line"
	@echo "              (figures in docs/operations.md; a 45-second version runs in make test; last measured"
	@echo "              45 s run: 17,825 acked = 17,825 stored, 0 lost, 0 duplicates, 0 5xx besides 503)"
	@echo "make lint   - ruff check, ruff format --check, mypy strict (code and tests)"
	@echo "make k8s    - render every Kubernetes overlay to deploy/k8s/rendered/ and validate it offline"

# Python toolchain and the workspace's locked dependencies.
deps:
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check uv
	@$(UV) sync --frozen --all-packages --quiet

# Apache Kafka broker and tools, as jars from Maven Central (cached per version).
kafka:
	@KAFKA_VERSION=$(KAFKA_VERSION) bash deploy/local/fetch-kafka.sh "$(TAPWIRE_KAFKA_HOME)"

# PostgreSQL server binaries from Debian's packages (tests start their own cluster on a free port).
postgres:
	@bash deploy/local/ensure-postgres.sh

# SDK packages from npm (tests/clients, npm ci) and Debian's chromium, for the real-client tests.
clients:
	@bash deploy/local/ensure-clients.sh tests/clients

infra: kafka postgres

run: deps
	@$(UV) run --frozen tapwire up

test: deps infra clients k8s
	@$(UV) run --frozen pytest $(PYTEST_ARGS)

bench: deps infra
	@$(UV) run --frozen python -m tests.bench.run

soak: deps infra
	@$(UV) run --frozen python -m tests.soak.run $(SOAK_ARGS)

lint: deps
	@$(UV) run --frozen ruff check .
	@$(UV) run --frozen ruff format --check .
	@$(UV) run --frozen mypy libs/src ingest/src query/src messaging/src privacy-worker/src console/src services/src tests

# Kubernetes manifests: kustomize, kubeconform and kube-score from the Go module proxy (pinned, cached under
# $(CACHE)/bin), hadolint and the Kubernetes JSON schemas from the dev dependencies; all offline once cached.
# Then the drift and policy checks of tests/deploy that need no running infrastructure.
k8s: deps
	@TAPWIRE_TOOLS="$(CACHE)/bin" bash deploy/k8s/check.sh all
	@$(UV) run --frozen pytest -q -p no:cacheprovider tests/deploy -m "not integration"

clean:
	rm -rf .venv .tapwire
