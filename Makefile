# The two set-up commands (see README): `make demo` and `make test`.
# Each creates .venv on first use and installs what it needs from the project's own files.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast test-crewai lint bench-locomo clean chromium wheel

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch is pinned and installed first so nothing pulls a multi-GB CUDA build.
$(VENV)/.demo-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[local,ann]'
	touch $@

$(VENV)/.test-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.demo-deps

demo: $(VENV)/.demo-deps
	$(BIN)/engramdb demo

# The browser tests (tests/test_ui_browser.py) drive Debian's Chromium through Playwright: Playwright's own browser
# download is not used, so a fresh machine gets the distribution package.
chromium:
	@test -x /usr/bin/chromium || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y chromium chromium-driver; }

# Static checks first (lint, types, import cycles), then the suite.
test: $(VENV)/.test-deps chromium lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

# The tests not marked slow (tests/conftest.py names the whole-system files): under a minute, for the edit loop.
test-fast: $(VENV)/.test-deps
	$(BIN)/ruff check src tests
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow"

# A wheel in dist/ to install EngramDB into another project: pip install 'dist/engramdb-<version>-py3-none-any.whl[local]'
wheel: | $(BIN)/python
	$(BIN)/pip wheel -q --no-deps --wheel-dir dist .

# crewai pins mcp<2, openai<3 and pydantic<2.13, against the server extra (mcp 2): its adapter is tested in a
# venv of its own, outside `make test` (2.3 GB; 7 to 21 minutes to build on 2 shared cores; tests/test_integrations_crewai.py)
CREWAI_VENV ?= .venv-crewai

$(CREWAI_VENV)/.deps: pyproject.toml
	$(PYTHON) -m venv $(CREWAI_VENV)
	$(CREWAI_VENV)/bin/pip install -q --upgrade pip
	$(CREWAI_VENV)/bin/pip install -q torch==2.13.0
	$(CREWAI_VENV)/bin/pip install -q -e '.[local,crewai]' 'crewai==1.15.30' pytest pytest-asyncio
	touch $@

test-crewai: $(CREWAI_VENV)/.deps
	$(CREWAI_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/test_integrations_crewai.py

lint: $(VENV)/.test-deps
	$(BIN)/ruff check src tests
	$(BIN)/mypy
	$(BIN)/python tools/check_imports.py

bench-locomo: $(VENV)/.demo-deps
	$(BIN)/engramdb bench locomo ../shared/data/locomo/locomo_dev.json --compare

clean:
	rm -rf $(VENV) $(CREWAI_VENV) build dist *.egg-info .pytest_cache
