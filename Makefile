# The two set-up commands (see README): `make demo` and `make test`.
# Each creates .venv on first use and installs what it needs from the project's own files.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench-locomo clean chromium

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

test: $(VENV)/.test-deps chromium
	$(BIN)/ruff check src tests
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(VENV)/.test-deps
	$(BIN)/ruff check src tests

bench-locomo: $(VENV)/.demo-deps
	$(BIN)/engramdb bench locomo ../shared/data/locomo/locomo_dev.json --compare

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
