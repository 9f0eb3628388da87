# The breach hotline. `make run` serves it locally; `make test` runs the whole suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export IVR_ENV ?= development
PORT ?= 5000

.PHONY: install run setup test test-fast chromium nginx axe bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

setup: $(STAMP)
	$(BIN)/ivr setup

run: setup
	PORT=$(PORT) $(BIN)/ivr serve

test: $(STAMP) chromium nginx axe
	$(BIN)/python -m pytest

# Everything not marked slow (no servers, browsers or ivr processes): about a minute, for the edit-test loop.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

# The console's browser tests drive Debian's Chromium through Playwright; no browser is ever downloaded.
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium; } \
	    || echo "chromium is not installed and cannot be (not root): the browser tests will be skipped"

# The deploy test puts Debian's nginx, with deploy/nginx/ivr-hotline.conf, in front of two servers.
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq nginx; } \
	    || echo "nginx is not installed and cannot be (not root): the deploy test will be skipped"

# axe-core, the accessibility checker the browser tests inject into every console page (from npm, pinned).
AXE_VERSION := 4.14.1
AXE := build/axe/node_modules/axe-core/axe.min.js
axe: $(AXE)
$(AXE):
	@command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq npm; } \
	    || echo "npm is not installed and cannot be (not root): the accessibility checks will be skipped"
	-command -v npm >/dev/null && npm install --silent --no-audit --no-fund --prefix build/axe axe-core@$(AXE_VERSION)

# The webhook bench (bench/webhooks.py, about 3 minutes on SQLite; BENCH_DB=both adds PostgreSQL), then the
# audio bench. A target NOT MET is printed, never a failure; each bench runs even if the one before crashed.
BENCH_DB ?= sqlite
bench: $(STAMP)
	@status=0; \
	$(BIN)/python bench/webhooks.py --db $(BENCH_DB) || status=1; \
	$(BIN)/python bench/audio.py || status=1; \
	exit $$status

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis .schemathesis bench/out .venv-mutate mutants

# A breach-day surge of complete calls on SQLite and PostgreSQL (bench/surge.py): about 10 minutes,
# too long for `make bench`. `.venv/bin/python bench/surge.py --quick` is a 3-minute smoke run.
.PHONY: surge
surge: $(STAMP)
	$(BIN)/python bench/surge.py

# Mutation testing of ivr/core with mutmut (docs/testing.md): which changes to the call flow would the fast tests
# notice? Heavy (about an hour for all of ivr/core on 2 busy cores), so never part of `make test` or CI. Its own
# venv: mutmut 3.7 needs pytest<9 (setup.cfg's `mutate` extra). Results stay in mutants/ and a run resumes there;
# `make mutate MUTANTS='ivr.core.flow.*'` re-runs those mutants (after new tests: a verdict is kept until the
# mutated function itself changes).
MUTATE_VENV := .venv-mutate
MUTATE_STAMP := $(MUTATE_VENV)/.installed-stamp
MUTATE_CHILDREN ?= 2
MUTANTS ?=
.PHONY: mutate
$(MUTATE_STAMP): setup.cfg pyproject.toml
	test -x $(MUTATE_VENV)/bin/python || $(PY) -m venv $(MUTATE_VENV)
	$(MUTATE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(MUTATE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test,mutate]'
	touch $(MUTATE_STAMP)

mutate: $(MUTATE_STAMP)
	$(MUTATE_VENV)/bin/mutmut run --max-children $(MUTATE_CHILDREN) $(MUTANTS)
	$(MUTATE_VENV)/bin/python bench/mutation_score.py
