"""GitOps without replica fights, in the real API server: a GitOps controller (Argo CD or Flux,
as configured by examples/gitops; harness.gitops models what they do) re-applies the user's
Deployment and InferenceService every second while aiscaler scales, and a person scales by hand
with the real kubectl.

aiscaler owns only the replica count, through server-side apply under its own field manager:
no flapping (the count moves only to aiscaler's decisions), no lost decision (the Deployment
ends at the last one), no unhandled conflict (no failed apply on either side), and the GitOps
tool shows no drift. A count set outside aiscaler is left alone for 10 minutes with
ScalingLimited=ScaledOutside and one Warning event naming who set it (docs/gitops.md).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness.components import REPO_ROOT
from harness.gitops import ArgoCd, Flux, SyncLoop
from harness.objects import API_VERSION, condition, replicas, status, warnings
from harness.operator import operator_kubeconfig
from harness.prometheus import Series

from aiscaler.forecast.baselines import HoltWintersForecaster
from aiscaler.handlers.tick import Operator, TickReport, run_tick
from aiscaler.kube.client import KubeApi
from aiscaler.metrics.prometheus import PrometheusMetrics
from aiscaler.settings import Settings

GITOPS = REPO_ROOT / "examples" / "gitops"
NAME = "llama-3-70b"
MODEL = "meta-llama/Llama-3.1-70B-Instruct"
GIT_REPLICAS = 2  # what the Deployment in Git says
# Demand (requests/s) from each offset (seconds before the end of the history) on: the service
# needs about 2, then 4, then 7 replicas of 6.5 requests/s.
RAMP = ((-6 * 3600, 8.0), (-2400, 20.0), (-1500, 40.0))
STEP_S = 30
H100 = {"name": "h100", "gpuType": "NVIDIA-H100-80GB-HBM3", "gpusPerNode": 8, "maxNodes": 8}


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def in_namespace(manifest: dict[str, Any], namespace: str) -> dict[str, Any]:
    placed = copy.deepcopy(manifest)
    placed["metadata"]["namespace"] = namespace
    return placed


def demand(namespace: str, end: float) -> Series:
    """vLLM's request counter of the model, growing at the rates of RAMP."""
    samples, total = [], 0.0
    for t in range(RAMP[0][0], 1, STEP_S):
        rate = [r for start, r in RAMP if start <= t][-1]
        samples.append((end + t, total))
        total += rate * STEP_S
    labels = {"namespace": namespace, "model_name": MODEL, "finished_reason": "stop"}
    return Series("vllm:request_success_total", labels, samples)


@pytest.fixture
def world(kube_api, namespace, prometheus_factory, tmp_path):
    """The example Deployment and InferenceService (in the test namespace), an operator as
    `aiscaler run` builds it with the shipped RBAC and the example's GPU pool, and a real
    Prometheus with the demand ramp ending at `end`."""
    end = time.time() - 10
    prometheus = prometheus_factory(history=[demand(namespace, end)])
    kubeconfig = operator_kubeconfig(kube_api, namespace, tmp_path / "operator.kubeconfig")
    op = Operator(
        kube=KubeApi(kube_api.new_api_client(kubeconfig)),
        metrics=PrometheusMetrics(prometheus.url, timeout_s=5),
        forecaster=HoltWintersForecaster(),
        settings=Settings(prometheus_url=prometheus.url, pools=[H100]),
        namespace=namespace,
    )
    [deployment] = documents(GITOPS / "llama-3-70b-deployment.yaml")
    [service] = documents(REPO_ROOT / "examples" / "inferenceservice-vllm-h100.yaml")
    yield {
        "op": op,
        "end": end,
        "admin": KubeApi(kube_api.new_api_client()),
        "manifests": [in_namespace(deployment, namespace), in_namespace(service, namespace)],
    }
    op.metrics.close()


def tick(world: dict[str, Any], offset: float) -> TickReport:
    """One planning tick at `offset` seconds from the end of the history."""
    admin: KubeApi = world["admin"]
    namespace = world["manifests"][0]["metadata"]["namespace"]
    services = admin.list(API_VERSION, "InferenceService", namespace)
    return run_tick(world["op"], services, [], world["end"] + offset)


def scaling(world: dict[str, Any], loop: SyncLoop, offsets: list[float]) -> list[tuple[int, int]]:
    """Ticks at `offsets`, the GitOps loop syncing twice after each; (decided, replicas then)
    per tick. Fails on any tick error."""
    admin: KubeApi = world["admin"]
    namespace = world["manifests"][0]["metadata"]["namespace"]
    seen = []
    for offset in offsets:
        report = tick(world, offset)
        assert report.errors == [], report.errors
        loop.wait_rounds(2)
        decided = status(admin, namespace, NAME)["desiredReplicas"]
        seen.append((decided, replicas(admin, namespace, NAME)))
    return seen


def application(**changes: Any) -> dict[str, Any]:
    [app] = documents(GITOPS / "argocd-application.yaml")
    app["spec"].update(changes)
    return app


def managed_fields_only() -> dict[str, Any]:
    """The example's Application ignoring only what field manager aiscaler owns."""
    app = application()
    for entry in app["spec"]["ignoreDifferences"]:
        entry.pop("jsonPointers")
    return app


@pytest.mark.parametrize("app", [application(), managed_fields_only()], ids=["example", "managed"])
def test_argo_cd_as_in_the_example_syncs_while_aiscaler_scales_without_a_fight(world, app):
    admin, manifests = world["admin"], world["manifests"]
    namespace = manifests[0]["metadata"]["namespace"]
    argo = ArgoCd(app)
    for manifest in manifests:
        argo.sync(admin, manifest)
    assert replicas(admin, namespace, NAME) == GIT_REPLICAS
    loop = SyncLoop(lambda: [argo.sync(admin, m) for m in manifests])
    try:
        seen = scaling(world, loop, [-2700, -1800, -900, -60])
    finally:
        loop.stop()

    assert loop.errors == [] and loop.rounds >= 8  # every sync applied, no conflict
    decisions = [decided for decided, _ in seen]
    assert decisions[0] == GIT_REPLICAS < decisions[1] < decisions[2], seen
    # No lost decision, no flapping: after each tick and two syncs the count is aiscaler's.
    assert all(decided == now for decided, now in seen), seen
    assert replicas(admin, namespace, NAME) == decisions[-1]
    assert warnings(admin, namespace, NAME) == []  # no outside change was ever seen
    assert condition(admin, namespace, NAME, "ScalingLimited")["reason"] != "ScaledOutside"
    # The Application is in sync: Git's replicas: 2 is ignored, the CR's defaults show nothing.
    for manifest in manifests:
        assert argo.out_of_sync(admin, manifest) == [], manifest["kind"]
    # The CR re-applied every second: its spec never changed (generation 1), its status stays.
    stored = admin.get(API_VERSION, "InferenceService", namespace, NAME)
    assert stored["metadata"]["generation"] == 1
    assert stored["status"]["desiredReplicas"] == decisions[-1]


def test_argo_cd_writing_back_the_replicas_in_git_meets_a_hold_not_a_fight(world):
    # Misconfigured: the Application neither ignores aiscaler's fields nor respects that.
    admin, manifests = world["admin"], world["manifests"]
    namespace = manifests[0]["metadata"]["namespace"]
    argo = ArgoCd(
        application(ignoreDifferences=[], syncPolicy={"syncOptions": ["ServerSideApply=true"]})
    )
    for manifest in manifests:
        argo.sync(admin, manifest)
    loop = SyncLoop(lambda: [argo.sync(admin, m) for m in manifests])
    try:
        reports = []
        for offset in (-1800, -1700, -1400, -1200):
            reports.append(tick(world, offset))
            loop.wait_rounds(2)
    finally:
        loop.stop()

    assert loop.errors == [] and all(r.errors == [] for r in reports)
    # aiscaler scaled once; Argo CD wrote Git's count back; aiscaler held from then on.
    key = f"{namespace}/{NAME}"
    assert key in reports[0].resized and all(key not in r.resized for r in reports[1:])
    assert replicas(admin, namespace, NAME) == GIT_REPLICAS
    held = condition(admin, namespace, NAME, "ScalingLimited")
    assert (held["status"], held["reason"]) == ("True", "ScaledOutside")
    assert "by argocd-controller, which applies spec.replicas from its manifest" in held["message"]
    assert warnings(admin, namespace, NAME) == ["ScaledOutside"]  # once


def test_flux_as_in_the_example_syncs_while_aiscaler_scales_and_undoes_a_kubectl_scale(
    kube_api, world
):
    admin, manifests = world["admin"], world["manifests"]
    namespace = manifests[0]["metadata"]["namespace"]
    kustomization, helm_release = (Flux(d) for d in documents(GITOPS / "flux-kustomization.yaml"))
    for manifest in manifests:
        kustomization.reconcile(admin, manifest)
    assert replicas(admin, namespace, NAME) == 1  # no replicas in the built manifest: the default
    loop = SyncLoop(lambda: [kustomization.reconcile(admin, m) for m in manifests])
    try:
        seen = scaling(world, loop, [-2700, -1800, -900])
        # A person scales by hand; Flux takes kubectl's fields over at its next reconcile and
        # drops the count, which nobody owns then: aiscaler takes over at once.
        kube_api.kubectl("-n", namespace, "scale", f"deployment/{NAME}", "--replicas=9")
        loop.wait_rounds(2)
        assert replicas(admin, namespace, NAME) == 1
        seen += scaling(world, loop, [-600])
    finally:
        loop.stop()

    assert loop.errors == []
    assert all(decided == now for decided, now in seen), seen
    assert seen[0][0] < seen[1][0] < seen[2][0], seen
    assert warnings(admin, namespace, NAME) == []
    for manifest in manifests:
        assert kustomization.drifted(admin, manifest) == [], manifest["kind"]
    assert helm_release.drifted(admin, manifests[0]) == []


def test_a_kubectl_scale_under_argo_cd_is_held_for_a_while_then_aiscaler_decides_again(
    kube_api, world
):
    admin, manifests = world["admin"], world["manifests"]
    namespace = manifests[0]["metadata"]["namespace"]
    argo = ArgoCd(application())
    for manifest in manifests:
        argo.sync(admin, manifest)
    loop = SyncLoop(lambda: [argo.sync(admin, m) for m in manifests])
    try:
        scaling(world, loop, [-2700, -1800])
        kube_api.kubectl("-n", namespace, "scale", f"deployment/{NAME}", "--replicas=9")
        loop.wait_rounds(2)  # Argo CD keeps the count set by hand (jsonPointers /spec/replicas)
        held = [tick(world, offset) for offset in (-1700, -1300)]
        loop.wait_rounds(2)
        at_hold = replicas(admin, namespace, NAME)
        limited = condition(admin, namespace, NAME, "ScalingLimited")
        listed = kube_api.kubectl("-n", namespace, "get", "ais", NAME).stdout
        after = scaling(world, loop, [-1000, -900])  # 10 minutes after the change was seen
    finally:
        loop.stop()

    assert loop.errors == [] and all(r.errors == [] for r in held)
    assert all(f"{namespace}/{NAME}" not in r.resized for r in held)
    assert at_hold == 9
    # kubectl get ais shows the hold (the Limited printer column)
    header, row = listed.splitlines()
    assert header.split()[-3:] == ["DEGRADED", "LIMITED", "AGE"]
    assert row.split()[-3:-1] == ["MetricsAvailable", "ScaledOutside"], listed
    assert (limited["status"], limited["reason"]) == ("True", "ScaledOutside")
    assert "from 4 to 9" in limited["message"] or "to 9 by kubectl" in limited["message"]
    assert "by kubectl (an update: kubectl scale" in limited["message"]
    assert warnings(admin, namespace, NAME) == ["ScaledOutside"]
    assert all(decided == now != 9 for decided, now in after), after
    assert condition(admin, namespace, NAME, "ScalingLimited")["reason"] != "ScaledOutside"
    assert argo.out_of_sync(admin, manifests[0]) == []


def test_applying_the_same_custom_resource_again_changes_nothing(kube_api, world, tmp_path):
    admin, manifests = world["admin"], world["manifests"]
    namespace = manifests[0]["metadata"]["namespace"]
    deployment_file, service_file = (tmp_path / f"{m['kind']}.yaml" for m in manifests)
    for manifest, path in zip(manifests, (deployment_file, service_file), strict=True):
        path.write_text(yaml.safe_dump(manifest))
    kube_api.kubectl("apply", "-f", str(deployment_file))
    first = kube_api.kubectl("apply", "-f", str(service_file)).stdout
    tick(world, -1800)  # aiscaler scales and writes the status

    def version() -> str:
        meta = admin.get(API_VERSION, "InferenceService", namespace, NAME)["metadata"]
        assert meta["generation"] == 1  # the spec never changed
        return str(meta["resourceVersion"])

    before = version()
    again = kube_api.kubectl("apply", "-f", str(service_file)).stdout
    assert "created" in first and "unchanged" in again and version() == before
    # The same with server-side apply (the first one moves ownership to its field manager).
    kube_api.kubectl("apply", "--server-side", "-f", str(service_file))
    before = version()
    kube_api.kubectl("apply", "--server-side", "-f", str(service_file))
    assert version() == before
    # kubectl diff (a server-side dry-run apply) shows no difference: the CRD's defaults and
    # aiscaler's status are no drift.
    for extra in ([], ["--server-side"]):
        done = kube_api.kubectl("diff", *extra, "-f", str(service_file), check=False)
        assert done.returncode == 0, done.stdout + done.stderr
