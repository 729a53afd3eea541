"""The fault tests: the operator against the real kube-apiserver and Prometheus that the
integration harness starts (harness.fixtures), with faults injected by a proxy on 127.0.0.1
(harness.proxy.FaultProxy) or by stopping and killing the real processes.

The operator is built as `aiscaler run` builds it (real KubeApi, PrometheusMetrics, a
forecaster) and authenticates as a service account bound to the shipped ClusterRole
(deploy/rbac.yaml); the tests run it through its public entry points (`run_tick`, or `aiscaler
run` as a process) and assert what users see: the target's replicas, the custom resources'
status and conditions, events. Every loop in a test is bounded in count and time.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness.fixtures import kube_api, namespace, prometheus_factory
from harness.kube import KubeControlPlane
from harness.prometheus import PrometheusFactory, PrometheusServer, Series
from harness.proxy import FaultProxy

from aiscaler.forecast.baselines import HoltWintersForecaster
from aiscaler.handlers.tick import Operator
from aiscaler.kube.client import KubeApi
from aiscaler.metrics.prometheus import PrometheusMetrics
from aiscaler.settings import Settings

__all__ = ["kube_api", "namespace", "prometheus_factory"]

FAULT_DIR = Path(__file__).parent
REPO = FAULT_DIR.parents[1]
KUBE_TIMEOUT_S = 2.0  # the operator's API timeout in these tests (10 s in production)
PROMETHEUS_TIMEOUT_S = 1.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # They need the real components, as the integration tests do.
    for item in items:
        if FAULT_DIR in item.path.parents:
            item.add_marker(pytest.mark.integration)


def rbac_documents() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((REPO / "deploy" / "rbac.yaml").read_text()))


@pytest.fixture(scope="session")
def cluster_role(kube_api: KubeControlPlane) -> str:
    [role] = [d for d in rbac_documents() if d["kind"] == "ClusterRole"]
    kube_api.apply(role)
    return str(role["metadata"]["name"])


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
    kube_api: KubeControlPlane,
    namespace: str,
    cluster_role: str,
    api_proxy: FaultProxy,
    tmp_path: Path,
) -> Path:
    """A kubeconfig of the operator's service account (the shipped ClusterRole, and the lease
    Role in `namespace`) that reaches the API server through `api_proxy`."""
    direct = kube_api.service_account_kubeconfig(namespace, "aiscaler", cluster_role)
    for doc in rbac_documents():
        if doc["kind"] in ("Role", "RoleBinding"):
            doc = copy.deepcopy(doc)
            doc["metadata"]["namespace"] = namespace
            for subject in doc.get("subjects", []):
                subject["namespace"] = namespace
            kube_api.apply(doc, namespace)
    config = yaml.safe_load(direct.read_text())
    cluster = config["clusters"][0]["cluster"]
    cluster["server"] = api_proxy.url
    del cluster["certificate-authority"]
    path = tmp_path / "operator.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


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
