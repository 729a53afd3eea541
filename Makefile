# Every target sets up what it needs on a fresh machine (virtualenv, packages, test components).
VENV ?= .venv
BIN := $(VENV)/bin
SRC := operator tests model bench

.PHONY: install components test unit lint crds demo

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
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
	$(BIN)/aiscaler crds --reference docs/crd-reference.md

demo: install
	$(BIN)/aiscaler simulate
