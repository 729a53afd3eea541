"""The integration tests: real components started by the fixtures of harness.fixtures (see
that module and docs/testing.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness.fixtures import kube_api, metrics_exporter, namespace, prometheus_factory

__all__ = ["kube_api", "metrics_exporter", "namespace", "prometheus_factory"]

INTEGRATION_DIR = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every test here needs real components: `-m "not integration"` leaves them out.
    for item in items:
        if INTEGRATION_DIR in item.path.parents:
            item.add_marker(pytest.mark.integration)
