# soilsuite: two commands on a fresh machine with python3 and make.
#   make demo   - install into .venv, simulate an archive, composite it, map soil
#   make test   - install into .venv, fetch the real test data, run the tests
#   make docs   - the docs site (MkDocs Material) into site/, warnings as errors
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp-install
REALDATA := .realdata
export MPLBACKEND := Agg

.PHONY: install demo test test-slow test-all realdata bench lint clean docs

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	# stackstac (tests/test_stac_clients.py) caps pandas<3 in its metadata but runs on our pandas 3 (tested);
	# its other dependencies are ours already, so it is installed without them
	$(PY) -m pip install --quiet --no-deps -c constraints.txt stackstac
	touch $(STAMP)

install: $(STAMP)

$(REALDATA)/.complete: scripts/fetch_realdata.py | $(STAMP)
	$(PY) scripts/fetch_realdata.py $(REALDATA)

realdata: $(REALDATA)/.complete

demo: $(STAMP)
	$(VENV)/bin/soilsuite demo --out demo_out --overwrite

test: $(STAMP) $(REALDATA)/.complete
	$(PY) -m pytest -q -n 2

test-slow: $(STAMP) $(REALDATA)/.complete
	$(PY) -m pytest -q -m slow

test-all: $(STAMP) $(REALDATA)/.complete
	$(PY) -m pytest -q -m "slow or not slow"

bench: $(STAMP) $(REALDATA)/.complete
	$(PY) bench/run_all.py

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench scripts

clean:
	rm -rf $(VENV) $(REALDATA) demo_out bench_out .pytest_cache site
