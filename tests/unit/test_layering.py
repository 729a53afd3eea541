"""Dependencies point inward: handlers -> (kube, metrics, forecast) -> core.

Checked on the source (direct imports of every module), so a forbidden import anywhere in a
layer fails here, and transitive leaks are caught because each layer may only import the
layers listed for it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "operator" / "aiscaler"

HEAVY = {"kopf", "kubernetes", "torch", "prometheus_api_client", "safetensors"}

# layer -> aiscaler subpackages it may import (itself always allowed)
ALLOWED_INTERNAL: dict[str, set[str]] = {
    "core": set(),
    "api": set(),
    "forecast": {"core"},
    "metrics": {"core"},
    "kube": {"core", "api"},
    "sim": {"core", "forecast"},
}
# layers that must stay importable without the heavy runtime packages
PURE_LAYERS = {"core", "api"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def layer_files(layer: str) -> list[Path]:
    return sorted((PACKAGE_ROOT / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(PURE_LAYERS))
def test_pure_layers_import_no_runtime_clients(layer: str) -> None:
    offenders = {
        f"{path.relative_to(PACKAGE_ROOT)}: {name}"
        for path in layer_files(layer)
        for name in imported_modules(path)
        if name.split(".")[0] in HEAVY
    }
    assert not offenders, f"aiscaler.{layer} must not import {sorted(HEAVY)}: {sorted(offenders)}"


@pytest.mark.parametrize("layer", sorted(ALLOWED_INTERNAL))
def test_layers_import_only_inner_layers(layer: str) -> None:
    allowed = ALLOWED_INTERNAL[layer] | {layer}
    offenders = set()
    for path in layer_files(layer):
        for name in imported_modules(path):
            parts = name.split(".")
            inner = parts[0] == "aiscaler" and len(parts) > 1 and parts[1] in ALLOWED_INTERNAL
            if inner and parts[1] not in allowed:
                offenders.add(f"{path.relative_to(PACKAGE_ROOT)}: {name}")
    assert not offenders, f"aiscaler.{layer} may import only {sorted(allowed)}: {sorted(offenders)}"


# torch is the `aiscaler[train]` extra: only the training modules may import it (train_cli does
# inside `run`, with a clear message when it is missing); the operator runs the model in numpy.
TORCH_MODULES = {"forecast/network.py", "forecast/training.py", "forecast/train_cli.py"}


def test_only_the_training_modules_import_torch() -> None:
    offenders = {
        f"{path.relative_to(PACKAGE_ROOT)}: {name}"
        for path in PACKAGE_ROOT.rglob("*.py")
        for name in imported_modules(path)
        if name.split(".")[0] == "torch"
        and str(path.relative_to(PACKAGE_ROOT)) not in TORCH_MODULES
    }
    assert not offenders, sorted(offenders)


def test_nothing_imports_a_top_level_operator_package() -> None:
    # operator/ is the package root, not a package: the stdlib owns the name `operator`.
    offenders = {
        f"{path.relative_to(PACKAGE_ROOT)}: {name}"
        for path in PACKAGE_ROOT.rglob("*.py")
        for name in imported_modules(path)
        if name.startswith("operator.")
    }
    assert not offenders, sorted(offenders)
