"""The pytest fixtures that start the real components, shared by tests/integration and
tests/fault (each conftest imports them): see docs/testing.md.

- `kube_api` (session): etcd + kube-apiserver with the CRDs from crds/ Established; a
  harness.kube.KubeControlPlane (`.kubeconfig`, `.api_client`, `.apply()`,
  `.create_namespace()`, `.service_account_kubeconfig()`, ...).
- `namespace` (function): a fresh namespace in that API server.
- `prometheus_factory` (function): `prometheus_factory(history=[Series...], scrape_targets=[...])`
  returns a started harness.prometheus.PrometheusServer (`.url`, `.stop()`, `.start()`).
- `metrics_exporter` (function): a harness.exporter.TestExporter to register live metrics on.

A missing component fails the test with how to install it, or skips it when the component is
listed in AISCALER_OPTIONAL_COMPONENTS (`kube`, `prometheus`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import pytest

from .components import REPO_ROOT, component_or_skip
from .exporter import TestExporter
from .kube import KubeControlPlane
from .prometheus import PrometheusFactory, PrometheusServer, Series


@pytest.fixture(scope="session")
def kube_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeControlPlane]:
    with component_or_skip():
        plane = KubeControlPlane(tmp_path_factory.mktemp("kube"))
    try:
        plane.start()
        plane.apply_crds(REPO_ROOT / "crds")
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def namespace(kube_api: KubeControlPlane) -> Iterator[str]:
    name = kube_api.create_namespace()
    yield name
    kube_api.delete_namespace(name)


@pytest.fixture
def prometheus_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusFactory]:
    started: list[PrometheusServer] = []

    def start(
        history: Iterable[Series] = (),
        scrape_targets: Sequence[str] = (),
        scrape_interval: str = "1s",
    ) -> PrometheusServer:
        with component_or_skip():
            server = PrometheusServer(
                tmp_path_factory.mktemp("prometheus"), scrape_targets, scrape_interval
            )
        started.append(server)
        server.backfill(history)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def metrics_exporter() -> Iterator[TestExporter]:
    exporter = TestExporter()
    yield exporter
    exporter.stop()
