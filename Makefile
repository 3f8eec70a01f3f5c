# twotower: `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYENV_PY := $(shell command -v pyenv >/dev/null 2>&1 && echo "$$(pyenv root)/versions/3.10.13/bin/python3.10")

# Python 3.10 is required (TFX 1.16 wheels). Prefer pyenv's 3.10.13, else a working python3.10.
PYTHON310 ?= $(shell \
  if [ -n "$(PYENV_PY)" ] && [ -x "$(PYENV_PY)" ]; then echo "$(PYENV_PY)"; \
  elif command -v python3.10 >/dev/null 2>&1 && python3.10 -c 'import sys' >/dev/null 2>&1; then command -v python3.10; fi)

export TF_USE_LEGACY_KERAS := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: venv data demo test test-fast clean help

help:
	@echo "make demo       create .venv, fetch MovieLens-100K, run the pipeline end to end"
	@echo "make test       create .venv and run every test (end-to-end ones included)"
	@echo "make test-fast  unit tests only (skips tests marked e2e)"

$(STAMP): setup.py constraints.txt Makefile
	@if [ -z "$(PYTHON310)" ]; then \
	  echo "error: Python 3.10 not found. Install it with 'pyenv install 3.10.13' (or apt-get install python3.10 python3.10-venv), or pass PYTHON310=/path/to/python3.10" >&2; exit 1; fi
	@echo "creating $(VENV) with $(PYTHON310)"
	$(PYTHON310) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "pip==24.3.1"
	$(PY) -m pip install --disable-pip-version-check --progress-bar off -c constraints.txt -e '.[test,airflow,kubeflow,bench]'
	@touch $(STAMP)

venv: $(STAMP)

data/movielens/interactions.csv: $(STAMP)
	$(VENV)/bin/twotower data movielens --out data/movielens

data: data/movielens/interactions.csv

# The pipeline, then the pushed model served over TF Serving's API, queried once, stopped.
demo: data
	$(VENV)/bin/twotower run --config configs/movielens.yaml
	@mkdir -p runs; \
	$(VENV)/bin/twotower serve --model_base_path serving_models/twotower > runs/serve.log 2>&1 & \
	pid=$$!; \
	$(VENV)/bin/twotower query --config configs/movielens.yaml --items data/movielens/items.csv --wait 120 \
	  --user-features user_id=1 age=24 gender=M occupation=technician zip=85711; \
	status=$$?; kill $$pid; wait $$pid 2>/dev/null; \
	if [ $$status -ne 0 ]; then echo "the model server failed; see runs/serve.log" >&2; fi; \
	exit $$status

test: $(STAMP)
	$(PY) -m pytest -q --durations=25

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not e2e"

clean:
	rm -rf $(VENV) runs data *.egg-info
