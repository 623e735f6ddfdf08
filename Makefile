# voxqueue: `make demo` runs the pipeline offline; `make test` runs the test suite.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
VQ     := $(VENV)/bin/voxqueue
STAMP  := $(VENV)/.installed
# ruff is pinned: each release brings new default rules.
RUFF   := ruff==0.17.6
# Test processes (pytest-xdist): most of the suite waits on real processes, timers and vendors'
# latency, so three processes on two cores overlap the waits (measured here: 15.5 min with two,
# 12.8 with three); each takes a Redis database of its own.
PYTEST_JOBS ?= 3

.DEFAULT_GOAL := help
.PHONY: help demo test lint chromium worker beat flower webhooks sandbox up bench bench-recovery bench-report clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "voxqueue needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench]'
	@touch $(STAMP)

demo: $(STAMP) ## Run the whole pipeline offline on the bundled samples and print the report
	$(VQ) demo

test: $(STAMP) ## Run the test suite (Redis and PostgreSQL from VOXQUEUE_TEST_* URLs)
	$(PY) -m pytest -n $(PYTEST_JOBS) --dist worksteal $(PYTEST_ARGS)

lint: $(STAMP) ## Check style with ruff
	$(PY) -m pip install --quiet $(RUFF)
	$(VENV)/bin/ruff check config models vendors tasks workers sandbox tests benchmarks

chromium: ## Install Debian's chromium (the browser test of the HTML report) unless it is there
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q chromium || { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium; }; }
	@chromium --version 2>/dev/null

worker: $(STAMP) ## Run a worker on every queue
	$(VQ) worker

beat: $(STAMP) ## Run the beat (polling and housekeeping)
	$(VQ) beat

flower: $(STAMP) ## Run Flower against the configured broker
	$(VQ) flower

webhooks: $(STAMP) ## Run the webhook receiver
	$(VQ) webhooks

sandbox: $(STAMP) ## Run the vendor sandbox on port 8700
	$(VQ) sandbox

up: ## Start the production topology with docker compose (add --profile sandbox for offline)
	docker compose up

bench: $(STAMP) ## Measure throughput against the sandbox (see benchmarks/)
	$(PY) benchmarks/throughput.py

bench-recovery: $(STAMP) ## Measure recovery: seconds from a worker kill or a broker restart to the batch done
	$(PY) benchmarks/recovery.py

bench-report: $(STAMP) ## Time the HTML report and the terminal table of a 10,000-job batch
	$(PY) benchmarks/report_page.py

clean: ## Remove the virtualenv and local state
	rm -rf $(VENV) var
