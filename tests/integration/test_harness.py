"""Smoke tests proving the real-component fixtures work (and what they enforce)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests
from harness.components import REPO_ROOT, ComponentMissing, component_or_skip, find_binary
from harness.exporter import TestExporter
from harness.kube import KubeControlPlane, load_manifests
from harness.prometheus import PrometheusFactory, Series, openmetrics_text
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import Gauge

EXAMPLES = REPO_ROOT / "examples"


# -- missing components: an error unless listed as optional --------------------------------


@pytest.mark.parametrize(
    ("optional", "missing", "outcome"),
    [
        ("", "kube", pytest.fail.Exception),
        ("prometheus", "kube", pytest.fail.Exception),
        ("kube", "kube", pytest.skip.Exception),
        (" prometheus , kube ,", "kube", pytest.skip.Exception),
        ("kube,prometheus", "prometheus", pytest.skip.Exception),
        ("kubernetes", "kube", pytest.fail.Exception),  # names match exactly
    ],
)
def test_missing_component_fails_unless_listed_optional(
    optional: str, missing: str, outcome: type[BaseException]
) -> None:
    with (
        pytest.raises(outcome, match="install-components"),
        component_or_skip({"AISCALER_OPTIONAL_COMPONENTS": optional}),
    ):
        raise ComponentMissing(missing, "not here")


def test_find_binary_names_the_component_when_missing() -> None:
    with pytest.raises(ComponentMissing) as missing:
        find_binary("prometheus", "no-such-binary-aiscaler")
    assert missing.value.component == "prometheus"


def _deployment(name: str, replicas: int) -> dict[str, object]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
    }


# -- kube-apiserver -----------------------------------------------------------------------


def test_deployment_scaled_through_scale_subresource(
    kube_api: KubeControlPlane, namespace: str
) -> None:
    apps = client.AppsV1Api(kube_api.api_client)
    apps.create_namespaced_deployment(namespace, _deployment("web", replicas=1))

    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 3}})

    assert apps.read_namespaced_deployment_scale("web", namespace).spec.replicas == 3
    assert apps.read_namespaced_deployment("web", namespace).spec.replicas == 3


def test_restricted_service_account_is_held_to_its_cluster_role(
    kube_api: KubeControlPlane, namespace: str
) -> None:
    client.RbacAuthorizationV1Api(kube_api.api_client).create_cluster_role(
        {
            "metadata": {"name": f"{namespace}-deployment-reader"},
            "rules": [
                {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]}
            ],
        }
    )
    client.AppsV1Api(kube_api.api_client).create_namespaced_deployment(
        namespace, _deployment("web", replicas=1)
    )
    kubeconfig = kube_api.service_account_kubeconfig(
        namespace, "reader", f"{namespace}-deployment-reader"
    )
    restricted = kube_api.new_api_client(kubeconfig)
    apps = client.AppsV1Api(restricted)

    # Allowed by the role: proves the token authenticates (a bad token would be 401 everywhere).
    assert [d.metadata.name for d in apps.list_namespaced_deployment(namespace).items] == ["web"]
    with pytest.raises(ApiException) as scale_denied:
        apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 2}})
    with pytest.raises(ApiException) as secrets_denied:
        client.CoreV1Api(restricted).list_namespaced_secret(namespace)
    restricted.close()

    assert scale_denied.value.status == 403
    assert secrets_denied.value.status == 403
    assert (
        client.AppsV1Api(kube_api.api_client)
        .read_namespaced_deployment("web", namespace)
        .spec.replicas
        == 1
    )


def _example_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))


def _kube_objects(path: Path) -> list[dict[str, Any]]:
    # Example folders may hold other YAML (e.g. Helm values); only manifests are applied.
    return [doc for doc in load_manifests([path]) if "apiVersion" in doc and "kind" in doc]


@pytest.mark.parametrize("path", _example_files(EXAMPLES), ids=lambda p: p.name)
def test_valid_example_accepted_by_api_server(
    kube_api: KubeControlPlane, namespace: str, path: Path
) -> None:
    manifests = _kube_objects(path)
    assert manifests, f"{path} holds no Kubernetes object"
    for manifest in manifests:
        created = kube_api.create(manifest, namespace)  # raises ApiException when rejected
        assert created.metadata.name == manifest["metadata"]["name"]


@pytest.mark.parametrize("path", _example_files(EXAMPLES / "invalid"), ids=lambda p: p.name)
def test_invalid_example_rejected_by_api_server(
    kube_api: KubeControlPlane, namespace: str, path: Path
) -> None:
    manifests = _kube_objects(path)
    assert manifests, f"{path} holds no Kubernetes object"
    for manifest in manifests:
        with pytest.raises(ApiException) as rejected:
            kube_api.create(manifest, namespace)
        # 422 Invalid: the CRD's OpenAPI schema or CEL rules refused it; 400 BadRequest: strict
        # decoding refused an unknown field. (A kind that is not served fails differently.)
        assert rejected.value.status in (400, 422), rejected.value.body


# -- Prometheus ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("series", "expected"),
    [
        ([], "# EOF\n"),
        ([Series("up", {}, [(1.0, 1.0)])], "up 1.0 1.000\n# EOF\n"),
        # samples in time order whatever the input order (promtool rejects out-of-order ones)
        ([Series("x", {}, [(2.0, 5.0), (1.0, 4.0)])], "x 4.0 1.000\nx 5.0 2.000\n# EOF\n"),
        # labels sorted; quote, backslash and newline escaped as OpenMetrics requires
        (
            [Series("x", {"b": 'say "hi"', "a": "c:\\d\ne"}, [(1.5, 2.0)])],
            'x{a="c:\\\\d\\ne",b="say \\"hi\\""} 2.0 1.500\n# EOF\n',
        ),
        (
            [Series("x", {}, [(1, float("nan")), (2, float("inf")), (3, float("-inf"))])],
            "x NaN 1.000\nx +Inf 2.000\nx -Inf 3.000\n# EOF\n",
        ),
    ],
)
def test_openmetrics_text_for_backfill(series: list[Series], expected: str) -> None:
    assert openmetrics_text(series) == expected


def _range_query(
    url: str, expr: str, start: float, end: float, step: float
) -> list[dict[str, Any]]:
    response = requests.get(
        f"{url}/api/v1/query_range",
        params={"query": expr, "start": start, "end": end, "step": step},
        timeout=10,
    )
    response.raise_for_status()
    return list(response.json()["data"]["result"])


def _instant_query(url: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    params: dict[str, object] = {"query": expr}
    if at is not None:
        params["time"] = at
    response = requests.get(f"{url}/api/v1/query", params=params, timeout=10)
    response.raise_for_status()
    return list(response.json()["data"]["result"])


def test_backfilled_history_returned_by_range_query(
    prometheus_factory: PrometheusFactory,
) -> None:
    end = float(int(time.time()) // 60 * 60 - 120)
    timestamps = [end - 60 * i for i in range(180, -1, -1)]  # three hours, one per minute
    month_ago = end - 30 * 86400
    history = [
        Series(
            "aiscaler_test_requests",
            {"namespace": "a", "service": "llm"},
            [(t, float(i)) for i, t in enumerate(timestamps)],
        ),
        Series("aiscaler_test_requests", {"namespace": "b", "service": "llm"}, [(end, 7.0)]),
        Series("aiscaler_test_old", {}, [(month_ago, 5.0)]),
        Series("aiscaler_test_odd", {"quote": 'a"b\\c'}, [(end, float("nan"))]),
    ]
    prometheus = prometheus_factory(history=history)

    result = _range_query(
        prometheus.url, 'aiscaler_test_requests{namespace="a"}', timestamps[0], end, 60
    )

    assert len(result) == 1
    assert result[0]["metric"] == {
        "__name__": "aiscaler_test_requests",
        "namespace": "a",
        "service": "llm",
    }
    assert [(float(t), float(v)) for t, v in result[0]["values"]] == [
        (t, float(i)) for i, t in enumerate(timestamps)
    ]
    # A month-old sample survives: the fixture's long retention keeps backfilled blocks.
    old = _instant_query(prometheus.url, "aiscaler_test_old", month_ago)
    assert [float(s["value"][1]) for s in old] == [5.0]
    # Escaped label values and NaN samples arrive as written.
    odd = _instant_query(prometheus.url, "aiscaler_test_odd", end)
    assert [(s["metric"]["quote"], s["value"][1]) for s in odd] == [('a"b\\c', "NaN")]


def test_prometheus_stop_and_start_keeps_url_and_data(
    prometheus_factory: PrometheusFactory,
) -> None:
    at = float(int(time.time()) - 60)
    prometheus = prometheus_factory(history=[Series("aiscaler_test_kept", {}, [(at, 3.0)])])

    prometheus.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{prometheus.url}/-/ready", timeout=2)
    prometheus.start()

    kept = _instant_query(prometheus.url, "aiscaler_test_kept", at)
    assert [float(s["value"][1]) for s in kept] == [3.0]


def test_live_series_scraped_from_test_exporter(
    prometheus_factory: PrometheusFactory, metrics_exporter: TestExporter
) -> None:
    gauge = Gauge("aiscaler_test_live", "a live test series", registry=metrics_exporter.registry)
    gauge.set(42)
    prometheus = prometheus_factory(scrape_targets=[metrics_exporter.target])

    deadline = time.monotonic() + 30
    values: list[float] = []
    while not values and time.monotonic() < deadline:
        time.sleep(0.5)
        values = [
            float(s["value"][1]) for s in _instant_query(prometheus.url, "aiscaler_test_live")
        ]

    assert values == [42.0]
