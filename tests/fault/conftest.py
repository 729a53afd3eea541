"""The fault tests: the operator against the real kube-apiserver and Prometheus that the
integration harness starts (harness.fixtures), with faults injected by a proxy on 127.0.0.1
(harness.proxy.FaultProxy) or by stopping and killing the real processes.

The operator is built as `aiscaler run` builds it (real KubeApi, PrometheusMetrics, a
forecaster) and authenticates as a service account bound to the shipped ClusterRole
(deploy/aiscaler.yaml); the tests run it through its public entry points (`run_tick`, or `aiscaler
run` as a process) and assert what users see: the target's replicas, the custom resources'
status and conditions, events. Every loop in a test is bounded in count and time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness.fixtures import kube_api, namespace, prometheus_factory
from harness.kube import KubeControlPlane
from harness.operator import operator_kubeconfig as operator_kubeconfig_at
from harness.operator import through
from harness.prometheus import PrometheusFactory, PrometheusServer, Series
from harness.proxy import FaultProxy

from aiscaler.forecast.baselines import HoltWintersForecaster
from aiscaler.handlers.tick import Operator
from aiscaler.kube.client import KubeApi
from aiscaler.metrics.prometheus import PrometheusMetrics
from aiscaler.settings import Settings

__all__ = ["kube_api", "namespace", "prometheus_factory"]

FAULT_DIR = Path(__file__).parent
KUBE_TIMEOUT_S = 2.0  # the operator's API timeout in these tests (10 s in production)
PROMETHEUS_TIMEOUT_S = 1.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # They need the real components, as the integration tests do.
    for item in items:
        if FAULT_DIR in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def garbage_collector(kube_api: KubeControlPlane) -> Iterator[None]:
    """Kubernetes' garbage collector runs: owned objects go with their owner."""
    process = kube_api.start_garbage_collector()
    yield
    process.stop()


@pytest.fixture
def admin(kube_api: KubeControlPlane) -> KubeApi:
    """The tests' own client, straight to the API server (no faults)."""
    return KubeApi(kube_api.new_api_client())


@pytest.fixture
def proxies() -> Iterator[Callable[..., FaultProxy]]:
    started: list[FaultProxy] = []

    def start(upstream: str, verify: str | bool = True) -> FaultProxy:
        proxy = FaultProxy(upstream, verify)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture
def api_proxy(kube_api: KubeControlPlane, proxies: Callable[..., FaultProxy]) -> FaultProxy:
    """A fault proxy in front of the real API server."""
    return proxies(kube_api.url, str(kube_api.pki.ca.cert))


@pytest.fixture
def operator_kubeconfig(
    kube_api: KubeControlPlane, namespace: str, api_proxy: FaultProxy, tmp_path: Path
) -> Path:
    """The operator's service account (the shipped RBAC), reaching the API server through
    `api_proxy`."""
    direct = operator_kubeconfig_at(kube_api, namespace, tmp_path / "direct.kubeconfig")
    return through(direct, api_proxy.url, tmp_path / "operator.kubeconfig")


MakeOperator = Callable[..., tuple[Operator, PrometheusServer, FaultProxy]]


@pytest.fixture
def make_operator(
    kube_api: KubeControlPlane,
    namespace: str,
    operator_kubeconfig: Path,
    prometheus_factory: PrometheusFactory,
    proxies: Callable[..., FaultProxy],
) -> Iterator[MakeOperator]:
    """`make(history, **settings)`: a real Prometheus with `history`, a fault proxy in front of
    it, and the operator reaching both through their proxies."""
    made: list[Operator] = []

    def make(
        history: list[Series], **settings: Any
    ) -> tuple[Operator, PrometheusServer, FaultProxy]:
        prometheus = prometheus_factory(history=history)
        prometheus_proxy = proxies(prometheus.url)
        op = Operator(
            kube=KubeApi(kube_api.new_api_client(operator_kubeconfig), timeout_s=KUBE_TIMEOUT_S),
            metrics=PrometheusMetrics(prometheus_proxy.url, timeout_s=PROMETHEUS_TIMEOUT_S),
            forecaster=HoltWintersForecaster(),
            settings=Settings(prometheus_url=prometheus_proxy.url, tick_seconds=30, **settings),
            namespace=namespace,
        )
        made.append(op)
        return op, prometheus, prometheus_proxy

    yield make
    for op in made:
        op.metrics.close()
