# Every target sets up what it needs on a fresh machine (virtualenv, packages, test components).
VENV ?= .venv
BIN := $(VENV)/bin
SRC := operator tests model bench

.PHONY: install runtime components test unit lint crds demo

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

# What the operator itself needs (no torch: it runs the model in numpy).
runtime: $(VENV)/.runtime

$(VENV)/.runtime: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

# Real components for the integration tests: kube-apiserver & co. built from Go modules,
# etcd, Prometheus. Idempotent; cached under .cache/.
components: install
	bash .ci/install-components

test: install components
	$(BIN)/pytest

unit: install
	$(BIN)/pytest tests/unit

lint: install
	$(BIN)/ruff check $(SRC)
	$(BIN)/mypy

crds: install
	$(BIN)/aiscaler crds

demo: runtime
	$(BIN)/aiscaler simulate
