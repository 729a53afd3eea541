"""The operator's own install pulls no torch: it runs the model in numpy. torch is the `train`
extra, which development and CI install with the test extra."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~\[;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_runtime_dependencies_have_no_torch() -> None:
    assert "torch" not in names(PROJECT["dependencies"])
    assert {"numpy", "safetensors", "threadpoolctl"} <= names(PROJECT["dependencies"])


def test_torch_is_the_train_extra_and_make_install_takes_it() -> None:
    assert "torch" in names(PROJECT["optional-dependencies"]["train"])
    makefile = (ROOT / "Makefile").read_text()
    assert 'pip install -q -e ".[test,train]"' in makefile
