# trakt-nb — `make run` and `make test` are all the set-up there is.
SHELL := /bin/bash
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup java browser run test lab bench check-sync check-clean clean-notebooks export

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "setting up $(VENV) (first time takes about a minute)…"
	@$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev,lake,spark]"
	@touch $(STAMP)

setup: $(STAMP)

## Java 17 for the Spark backend and its tests (Debian's package; needs root, as CI has)
java:
	@java -version >/dev/null 2>&1 || { \
	  echo "installing Java 17 (Debian package) for the Spark backend…"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null; }

## headless Chromium for the browser tests (Debian's package; needs root, as CI has)
browser:
	@command -v chromium >/dev/null || command -v chromium-headless-shell >/dev/null || { \
	  echo "installing Chromium (Debian package) for the browser tests…"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

## run today's pipeline on the built-in replay API and a DuckDB file
run: setup
	@$(BIN)/trakt-nb run

## every check CI runs
test: setup java browser check-sync check-clean
	$(BIN)/nbdev-test --n-workers 2
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=15 -m "not reliability_full" tests notebooks --nbval-lax

## the library must be exactly the export of the notebooks
check-sync: setup
	@before=$$(find trakt_nb -name '*.py' | sort | xargs md5sum | md5sum); \
	$(BIN)/nbdev-export; \
	after=$$(find trakt_nb -name '*.py' | sort | xargs md5sum | md5sum); \
	if [ "$$before" != "$$after" ]; then echo "trakt_nb/ was out of sync with notebooks/: run 'make export' and commit the result"; exit 1; fi; \
	echo "library in sync with notebooks"

## committed notebooks carry no outputs or execution counts
check-clean: setup
	@$(BIN)/python tests/check_clean.py notebooks

## export the library and clean the notebooks (run before committing)
export: setup
	$(BIN)/nbdev-export
	$(BIN)/nbdev-clean
	$(BIN)/python tests/check_clean.py --fix notebooks

lab: setup
	$(BIN)/jupyter lab --notebook-dir=notebooks --allow-root

## every benchmark in bench/ in turn (installs the bench extra: dlt for the ingest comparison)
bench: setup
	$(BIN)/pip install -q -e ".[dev,bench]"
	@set -e; for f in bench/*.py; do m=$$(basename $$f .py); [ "$$m" = __init__ ] && continue; \
		echo "== python -m bench.$$m"; $(BIN)/python -m bench.$$m; done

## the whole fault matrix (tests/reliability/, every scenario incl. the 30-day backfill; CI runs the quick subset in `make test`)
test-reliability: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/reliability --durations=0
