"""The Helm chart (charts/aiscaler): `helm lint --strict`, `helm template` with the default
values and with every option on, the rendered manifests validated by kubernetes-validate
--strict, the CRDs and deploy/ kept equal to their sources, values.schema.json refusing bad
values, and the settings file it renders read by the operator's own Settings.

`helm install` into a cluster, RBAC enough for the running operator, and the dashboard's
queries against the operator's real metrics are tested end to end in tests/e2e."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import promql_parser
import pytest
import yaml
from harness.helm import CHART, KUBE_VERSION, Helm, render_deploy

from aiscaler.settings import GpuPool, Settings

REPO = Path(__file__).resolve().parents[2]
ALL_OPTIONS = CHART / "ci" / "all-options-values.yaml"


@pytest.fixture(scope="module")
def helm() -> Helm:
    return Helm.installed()


def rendered(helm: Helm, *args: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(helm.template(*args)) if doc]


def one(docs: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    return doc


def settings_of(docs: list[dict[str, Any]], tmp_path: Path, monkeypatch) -> Settings:
    config = one(docs, "ConfigMap", "aiscaler")["data"]["config.yaml"]
    path = tmp_path / "config.yaml"
    path.write_text(config)
    for name in list(os.environ):
        if name.startswith("AISCALER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AISCALER_CONFIG_FILE", str(path))
    return Settings()


@pytest.mark.parametrize("values", [None, ALL_OPTIONS], ids=["defaults", "all-options"])
def test_helm_lint_strict_passes(helm, values):
    helm.run("lint", "--strict", str(CHART), *(["-f", str(values)] if values else []))


@pytest.mark.parametrize("values", [None, ALL_OPTIONS], ids=["defaults", "all-options"])
def test_rendered_manifests_are_valid_kubernetes_objects(helm, values):
    docs = rendered(helm, *(["-f", str(values)] if values else []))
    kinds = {d["kind"] for d in docs}
    assert {"ServiceAccount", "ClusterRole", "Role", "Deployment", "ConfigMap"} <= kinds
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # prometheus-operator's kind: kubernetes-validate has no schema for it
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def test_the_service_monitor_selects_the_metrics_service(helm):
    docs = rendered(helm, "-f", str(ALL_OPTIONS))
    monitor = one(docs, "ServiceMonitor")
    service = one(docs, "Service", "-metrics")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "interval": "30s"}]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert [p["name"] for p in service["spec"]["ports"]] == ["metrics"]


def test_the_chart_crds_are_the_generated_ones():
    chart_crds = {p.name: p.read_text() for p in (CHART / "crds").glob("*.yaml")}
    crds = {p.name: p.read_text() for p in (REPO / "crds").glob("*.yaml")}
    assert chart_crds == crds, "charts/aiscaler/crds/ differs from crds/: run `make crds`"


def test_deploy_is_the_chart_rendered_with_its_defaults(helm):
    assert (REPO / "deploy" / "aiscaler.yaml").read_text() == render_deploy(helm), (
        "deploy/aiscaler.yaml differs from the chart: run `make deploy`"
    )


def test_the_operator_runs_locked_down(helm):
    deployment = one(rendered(helm), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/aiscaler"]["readOnly"] is True and "/tmp" in mounts
    assert container["args"] == []  # the image's entrypoint is `aiscaler run`
    assert deployment["spec"]["replicas"] == 1
    assert pod["serviceAccountName"] == "aiscaler"


def test_two_replicas_spread_and_share_one_lease(helm):
    docs = rendered(helm, "-f", str(ALL_OPTIONS))
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    affinity = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    term = affinity["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    role = one(docs, "Role", "-leader")
    assert role["metadata"]["namespace"] == "aiscaler"
    named = [r for r in role["rules"] if r.get("resourceNames")]
    assert named == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["aiscaler-leader"],
            "verbs": ["get", "update"],
        }
    ]


def test_rbac_never_deletes_and_never_reads_secrets(helm):
    docs = rendered(helm)
    for kind in ("ClusterRole", "Role"):
        for rule in one(docs, kind)["rules"]:
            assert not {"delete", "deletecollection", "*"} & set(rule["verbs"]), rule
            assert "secrets" not in rule["resources"] and "*" not in rule["resources"], rule


def test_default_settings_are_read_by_the_operator(helm, tmp_path, monkeypatch):
    settings = settings_of(rendered(helm), tmp_path, monkeypatch)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert settings.prometheus_url == values["prometheus"]["url"]
    assert settings.tick_seconds == values["tickSeconds"]
    assert [p.name for p in settings.pools] == ["h100", "l4"]
    assert settings.gpu_budget is None and settings.prometheus_bearer_token_file is None
    assert settings.balloon_priority_class == values["balloonPriorityClass"]["name"]


def test_every_option_reaches_the_settings_and_the_pod(helm, tmp_path, monkeypatch):
    docs = rendered(helm, "-f", str(ALL_OPTIONS))
    settings = settings_of(docs, tmp_path, monkeypatch)
    assert settings.tick_seconds == 15 and settings.gpu_budget == 96
    assert settings.namespaces == ["inference", "ml-*"]
    assert settings.pools[0].node_selector == {"karpenter.sh/nodepool": "h100"}
    assert settings.pools[0].budget == 64 and settings.pools[0].min_nodes == 1
    assert str(settings.model_path) == "/models/aiscaler"
    assert (settings.measurement.history_step_s, settings.measurement.window_s) == (30, 60)
    assert (settings.metrics_port, settings.health_port) == (9100, 9101)
    token = settings.prometheus_bearer_token_file
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "prometheus-token")
    assert token is not None and str(token.parent) == mount["mountPath"]
    volume = next(v for v in pod["volumes"] if v["name"] == "prometheus-token")
    assert volume["secret"]["secretName"] == "prometheus-token"
    assert volume["secret"]["items"] == [{"key": "token", "path": token.name}]
    assert container["args"] == ["--verbose"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 9100, "health": 9101}
    dashboard = one(docs, "ConfigMap", "-dashboard")
    assert dashboard["metadata"]["namespace"] == "monitoring"


def test_a_changed_setting_rolls_the_operator(helm):
    def checksum(*args: str) -> str:
        deployment = one(rendered(helm, *args), "Deployment")
        return deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum() == checksum()
    assert checksum() != checksum("--set", "tickSeconds=10")


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        (["--set", "pools[0].gpusPerNode=0"], "gpusPerNode"),
        (["--set", "tickSeconds=0"], "tickSeconds"),
        (["--set", "prometheus.url=prometheus:9090"], "url"),
        (["--set", "replicaCount=3"], "replicaCount"),
        (["--set", "tickSecond=10"], "tickSecond"),  # a typo is an error, not ignored
        (["--set", "balloonPriorityClass.value=1000"], "value"),
        (["--set", "measurement.window_s=0"], "window_s"),
        (["--set-json", 'pools=[{"name": "a", "gpuType": "T4", "gpusPerNode": 1}]'], "maxNodes"),
    ],
)
def test_the_values_schema_refuses_bad_values(helm, override, complaint):
    with pytest.raises(subprocess.CalledProcessError) as refused:
        helm.template(*override)
    assert "values don't meet the specifications of the schema" in refused.value.stderr
    assert complaint in refused.value.stderr


def test_the_pool_schema_has_the_operator_pool_fields():
    schema = json.loads((CHART / "values.schema.json").read_text())
    pool = schema["properties"]["pools"]["items"]
    fields = GpuPool.model_fields
    assert set(pool["properties"]) == {f.alias for f in fields.values()}
    assert set(pool["required"]) == {f.alias for f in fields.values() if f.is_required()}


def test_every_dashboard_query_is_valid_promql_over_operator_metrics():
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 8
    for expr in exprs:
        ast = promql_parser.parse(
            expr.replace("$__rate_interval", "1m").replace("$namespace", ".*")
        )
        assert "aiscaler_" in ast.prettify(), expr
