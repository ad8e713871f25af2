# trakt-nb — `make run` and `make test` are all the set-up there is.
SHELL := /bin/bash
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEV_STAMP := $(VENV)/.installed-dev-stamp
TEST_STAMP := $(VENV)/.installed-test-stamp
# committed notebooks carry no outputs or execution counts (nbstripout; nbdev-clean keeps outputs, as clear_all would also drop cell tags)
NOTEBOOKS := $(wildcard notebooks/*.ipynb notebooks/pipeline/*.ipynb)

.PHONY: setup dev-setup test-setup java browser run test lab bench check-sync check-clean check-imports clean-notebooks export

# `make run` installs only what the daily run needs; the checks (nbdev, pytest, Chromium driver) and the
# lakehouse/Spark/Dagster extras come with `make test` (and JupyterLab with `make lab`)
# packages are installed with uv (about 4x faster than pip from a cold cache: bench/README.md, "Set-up"), compiled
# to bytecode at install: imports then never compile sources, even where PYTHONDONTWRITEBYTECODE is set
UV := $(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "setting up $(VENV) for the daily run (first time takes under a minute)…"
	@test -x $(BIN)/uv || $(BIN)/python -m pip install -q --disable-pip-version-check "uv>=0.13,<1"
	@$(UV) -e .
	@touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	@echo "installing the notebook and test tools into $(VENV)…"
	@$(UV) -e ".[dev]"
	@touch $(DEV_STAMP)

$(TEST_STAMP): $(DEV_STAMP)
	@echo "installing the lakehouse, Spark and Dagster extras for their tests into $(VENV)…"
	@$(UV) -e ".[dev,lake,spark,dagster]"
	@touch $(TEST_STAMP)

setup: $(STAMP)
dev-setup: $(DEV_STAMP)
test-setup: $(TEST_STAMP)

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
## (each notebook runs once: the library notebooks under nbval, which executes every cell nbdev-test would; the pipeline
##  notebooks under papermill with their parameters, as the daily run executes them, in tests/test_run.py; explore.ipynb
##  under papermill in tests/test_explore.py, once on each of its paths (no warehouse yet, then the daily one);
##  two workers, one per core: a test file runs whole on one of them, the notebooks together in order — tests/conftest.py)
test: test-setup java browser check-sync check-clean check-imports
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=15 -n 2 --no-loadscope-reorder -m "not reliability_full" tests notebooks --nbval-lax --ignore=notebooks/pipeline --ignore=notebooks/explore.ipynb

## the library must be exactly the export of the notebooks
check-sync: dev-setup
	@before=$$(find trakt_nb -name '*.py' | sort | xargs md5sum | md5sum); \
	$(BIN)/nbdev-export; \
	after=$$(find trakt_nb -name '*.py' | sort | xargs md5sum | md5sum); \
	if [ "$$before" != "$$after" ]; then echo "trakt_nb/ was out of sync with notebooks/: run 'make export' and commit the result"; exit 1; fi; \
	echo "library in sync with notebooks"

## committed notebooks carry no outputs or execution counts
check-clean: dev-setup
	@$(BIN)/nbstripout --keep-id --verify $(NOTEBOOKS) || { echo "these notebooks carry outputs: run make export"; exit 1; }

## the library's imports go one way and hold no cycle: the layers and contracts of .importlinter, then the cycle count
check-imports: dev-setup
	@$(BIN)/lint-imports --no-cache --no-logo
	@$(BIN)/python tests/check_imports.py

## export the library and clean the notebooks (run before committing)
export: dev-setup
	$(BIN)/nbdev-export
	$(BIN)/nbdev-clean
	$(BIN)/nbstripout --keep-id $(NOTEBOOKS)

## JupyterLab at the project root (notebooks/, reports/, data/ side by side), explore.ipynb open, no news pop-up
lab: dev-setup
	@$(BIN)/jupyter labextension disable --level=sys_prefix "@jupyterlab/apputils-extension:announcements" >/dev/null 2>&1 || true
	$(BIN)/jupyter lab --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/notebooks/explore.ipynb \
		--LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate --allow-root

## every benchmark in bench/ in turn (installs the bench extra: dlt for the ingest comparison)
bench: dev-setup
	$(UV) -e ".[dev,bench]"
	@set -e; for f in bench/*.py; do m=$$(basename $$f .py); [ "$$m" = __init__ ] && continue; \
		echo "== python -m bench.$$m"; $(BIN)/python -m bench.$$m; done

## the whole fault matrix (tests/reliability/, every scenario incl. the 30-day backfill, and the lakehouse deletions on Spark;
## CI runs the quick subset in `make test`)
test-reliability: dev-setup
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/reliability "tests/test_lake.py::test_deletions_on_the_lake_equal_duckdb[iceberg-pyspark]" --durations=0
