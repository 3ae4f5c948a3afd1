# ostack: two commands on a fresh machine. `make dev` runs it, `make test` tests it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help venv tools crds lint test unit integration dev down clean

help:
	@echo "make dev    local control plane + simulator + operators + examples (or \$$KUBECONFIG)"
	@echo "make test   install what is missing, then lint, drift check and all tests"
	@echo "make tools  build the pinned etcd, kube-apiserver, kube-controller-manager, helm and versitygw"
	@echo "make crds   regenerate crds/, the chart's CRDs and docs/api.md from the models"

# The venv is rebuilt when pyproject.toml changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

venv: $(STAMP)

tools:
	hack/tools/build.sh

crds: venv
	$(PY) -m operators.codegen

lint: venv
	$(VENV)/bin/ruff check operators tests
	$(VENV)/bin/ruff format --check operators tests
	$(PY) -m operators.codegen --check

unit: venv
	$(VENV)/bin/pytest tests/unit

integration: venv tools
	$(VENV)/bin/pytest tests/integration

test: venv tools lint
	$(VENV)/bin/pytest

dev: venv tools
	$(PY) -m operators.devcluster dev

down: venv
	$(PY) -m operators.devcluster down

clean:
	-$(PY) -m operators.devcluster down
	rm -rf .dev .tools $(VENV)
