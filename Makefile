# The README's two commands are `make run` and `make test`; the rest are
# for developers. Python tools live in a local virtualenv (.venv), which is
# put first on PATH, so its `netlab` is found when no other is installed.

SHELL := /bin/bash
VENV ?= .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

HOST ?= 127.0.0.1
PORT ?= 8000
PY_DEPS := networklab maturin pytest ruff mypy types-requests "pydantic>=2" requests openapi-spec-validator schemathesis prometheus_client selenium ansible-core

# The pytest plugin uses pytest internals: its tests also run on the lowest pytest that
# pyproject.toml allows (the main virtualenv has the highest).
PYTEST_LOWEST := 8.0.0
LOWEST_VENV := .venv-pytest-$(PYTEST_LOWEST)

.PHONY: run test test-pytest-lowest test-worker-sdk check fmt lint audit bench bench-quick wheel venv netlab clean docs-screenshot

## run: build, make sure netlab exists, start the server on $(HOST):$(PORT)
# The server picks netlab's provider itself (the container-free `external`
# one where none is installed) and says so in its first log lines.
run: netlab
	cargo build --release --locked
	target/release/neops-remote-lab --host $(HOST) --port $(PORT)

## test: every test (Rust unit + integration, Python), against real netlab
# `cargo test` also builds target/debug/neops-remote-lab for the Python tests
# (a separate `cargo build` would compile everything twice: dev-dependencies
# change the feature set).
# The Python tests run the package installed from this checkout (editable,
# with its pytest11 entry point), as users get it.
test: venv
	cargo test --locked --no-fail-fast
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(VENV)/bin/maturin develop --locked
	NEOPS_REMOTE_LAB_BIN=$(CURDIR)/target/debug/neops-remote-lab \
	  $(VENV)/bin/python -m pytest python/tests -q

# These two use the server binary `maturin develop` installs (the build `make test` made).

## test-pytest-lowest: the plugin's and client's tests on the lowest supported pytest
## (the server-only ones - wheel, metrics, dashboard, OpenAPI, the README's CI examples - run
## in `make test`)
test-pytest-lowest: venv
	python3 -m venv $(LOWEST_VENV)
	$(LOWEST_VENV)/bin/pip install -q "pytest==$(PYTEST_LOWEST)"
	VIRTUAL_ENV=$(CURDIR)/$(LOWEST_VENV) $(VENV)/bin/maturin develop --locked
	@$(LOWEST_VENV)/bin/python -c 'import pytest; assert pytest.__version__ == "$(PYTEST_LOWEST)", pytest.__version__'
	NEOPS_REMOTE_LAB_BIN=$(CURDIR)/$(LOWEST_VENV)/bin/neops-remote-lab \
	  $(LOWEST_VENV)/bin/python -m pytest python/tests -q --ignore python/tests/test_wheel.py \
	  --ignore python/tests/test_metrics.py --ignore python/tests/test_dashboard_browser.py \
	  --ignore python/tests/test_openapi.py --ignore python/tests/test_readme_ci_examples.py

## test-worker-sdk: the Worker SDK (PyPI, newest pre-release, Python >= 3.12) runs a
## function block on our wheel and server (needs the package index)
test-worker-sdk: venv
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(VENV)/bin/maturin develop --locked
	NEOPS_REMOTE_LAB_BIN=$(CURDIR)/$(VENV)/bin/neops-remote-lab \
	  $(VENV)/bin/python -m pytest python/tests -q -m worker_sdk

## check: formatting, lints and every test
check: fmt lint test

fmt: venv
	cargo fmt --all -- --check
	$(VENV)/bin/ruff format --check python bench

lint: venv
	cargo clippy --all-targets --locked -- -D warnings
	$(VENV)/bin/ruff check python bench
	$(VENV)/bin/mypy

## audit: known-vulnerability checks (needs the advisory databases online)
audit: venv
	cargo install --locked cargo-audit
	cargo audit
	$(VENV)/bin/pip install -q pip-audit
	$(VENV)/bin/pip-audit

## bench: run the benchmarks and rewrite bench/README.md (needs wrk)
bench: venv
	cargo build --release --locked
	PYTHON=$(VENV)/bin/python bench/run

## bench-quick: a few seconds of every benchmark, to keep the scripts working
bench-quick: venv
	PYTHON=$(VENV)/bin/python bench/run --quick

## wheel: the Python wheel with the server binary inside
wheel: venv
	$(VENV)/bin/maturin build --release --locked --out dist

## docs-screenshot: docs/dashboard.png, the dashboard with a queue of 3 and a lab up
# (real netlab; needs Debian's chromium and chromium-driver)
docs-screenshot: venv
	cargo build --locked
	NEOPS_REMOTE_LAB_BIN=$(CURDIR)/target/debug/neops-remote-lab \
	  $(VENV)/bin/python python/tests/dashboard_screenshot.py docs/dashboard.png

## netlab: use the netlab on PATH, or install it into $(VENV)
netlab:
	@if command -v netlab >/dev/null; then \
	  echo "using $$(command -v netlab)"; \
	else \
	  echo "netlab not found: installing networklab into $(VENV)"; \
	  python3 -m venv $(VENV) && $(VENV)/bin/pip install -q networklab; \
	fi

## venv: the local virtualenv with netlab and the Python tools
venv: $(VENV)/.installed

$(VENV)/.installed: Makefile
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q $(PY_DEPS)
	touch $@

clean:
	cargo clean
	rm -rf $(VENV) $(LOWEST_VENV) dist
