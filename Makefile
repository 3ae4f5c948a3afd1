# ostack: two commands on a fresh machine. `make dev` runs it, `make test` tests it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help venv tools crds lint test unit integration chart-test kind-up e2e bench chaos dev down clean

help:
	@echo "make dev    local control plane + simulator + operators + examples (or \$$KUBECONFIG)"
	@echo "make test   install what is missing, then lint, drift check and all tests"
	@echo "make tools  build the pinned etcd, kube-apiserver, kube-controller-manager, helm and versitygw"
	@echo "make crds   regenerate crds/, the chart's CRDs and docs/api.md from the models"
	@echo "make chart-test  helm lint, rendered-object checks, helm install + RBAC checks"
	@echo "make kind-up     a kind cluster with KubeVirt, CDI, CSI, Multus, CAPI, S3 and ostack"
	@echo "make e2e         the end-to-end suite against \$$KUBECONFIG (after kind-up)"
	@echo "make bench       convergence, API cost and footprint figures (bench/results.json)"
	@echo "make chaos       the crash test at full size (200 objects, 10 kills)"

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
	$(VENV)/bin/ruff check operators tests bench
	$(VENV)/bin/ruff format --check operators tests bench
	$(PY) -m operators.codegen --check

unit: venv
	$(VENV)/bin/pytest tests/unit

integration: venv tools
	$(VENV)/bin/pytest tests/integration

test: venv tools lint
	$(VENV)/bin/pytest

chart-test: venv tools
	.tools/bin/helm lint charts/ostack --kube-version 1.33.13
	$(VENV)/bin/pytest tests/chart

kind-up: venv tools
	hack/kind-up.sh

e2e: venv
	OSTACK_E2E=1 $(VENV)/bin/pytest tests/e2e -rs

bench: venv tools
	$(PY) -m bench

chaos: venv tools
	OSTACK_CHAOS_OBJECTS=200 OSTACK_CHAOS_KILLS=10 $(VENV)/bin/pytest tests/integration/test_crash.py -v

dev: venv tools
	$(PY) -m operators.devcluster dev

down: venv
	$(PY) -m operators.devcluster down

clean:
	-$(PY) -m operators.devcluster down
	rm -rf .dev .tools $(VENV)
