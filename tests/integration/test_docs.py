"""Every command in the documentation's ```bash blocks runs, as a user would run it, against
real components: a kube-apiserver of its own per guide (with kubectl and helm), a real
Prometheus holding a real trace or a load test's metrics, and `aiscaler` from this checkout.
The operator does not run as a pod (no kubelet here): before each `kubectl get`/`describe`, the
test runs one planning tick in-process, as the operator's pod would have by then. A command that
cannot run here is listed in NOT_RUN with the reason; any other command of docs/ must be run by
a test below, or the first test fails."""

from __future__ import annotations

import json
import math
import re
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from harness.components import REPO_ROOT, component_or_skip
from harness.docs import DOCS, Shell, commands
from harness.kube import KubeControlPlane
from harness.prometheus import PrometheusServer, Series
from harness.traces import bundled_requests, request_counter

from aiscaler.forecast.baselines import HoltWintersForecaster
from aiscaler.handlers.tick import Operator, run_tick
from aiscaler.kube.client import KubeApi
from aiscaler.metrics.prometheus import PrometheusMetrics
from aiscaler.settings import Settings

# Commands the tests cannot run, and why.
NOT_RUN = {
    r"^vllm bench serve ": "a load generator: needs vLLM serving a model on a GPU; the test runs "
    "the capacity queries on the metrics of such a load test instead",
    r"^python -m sglang\.bench_serving ": "a load generator: needs SGLang on a GPU (as above)",
    r"^\.venv/bin/python bench/sim_bench\.py$": "the full benchmark: every trace, hours on two "
    "cores; its command and figures are kept in bench/RESULTS.md",
    r"^\.venv/bin/pytest tests/integration/test_gitops\.py$": "the GitOps tests: make test runs "
    "them",
    r"^helm install aiscaler charts/aiscaler .* -f my-values\.yaml$": "a user's own values file; "
    "quickstart.md's install of the same chart runs here, and tests/e2e installs it into the "
    "local cluster",
    r"^kubectl get ais,atj -A$": "helm.md's check after an install: quickstart.md's `kubectl get` "
    "commands run here against an installed release",
    r"^make (cluster-up|cluster-down|demo)$": "the local cluster (minutes of wall time): tests/e2e "
    "brings the same cluster up with harness.cluster and runs the demo's loop",
    r"^export KUBECONFIG=\$PWD/\.cache/cluster/admin\.kubeconfig$": "only meaningful with the "
    "local cluster up (see make cluster-up)",
    r"^\.venv/bin/kubectl get nodes -L nvidia\.com/gpu\.product$": "the local cluster's nodes: "
    "tests/integration/test_local_cluster.py checks them",
}
# The guides whose commands a test below runs, all of them, in order.
RUN_BY_TESTS = {
    "quickstart.md",
    "adoption.md",
    "capacity.md",
    "troubleshooting.md",
    "tuning.md",
    "benchmark.md",
}
PROMETHEUS = "http://localhost:9090"  # what the guides call the user's Prometheus
MODEL = "meta-llama/Llama-3.1-70B-Instruct"
VALUES = REPO_ROOT / "examples" / "helm" / "quickstart-values.yaml"


def not_run(command: str) -> str | None:
    return next((why for pattern, why in NOT_RUN.items() if re.search(pattern, command)), None)


def test_every_command_in_the_docs_is_run_or_says_why_not():
    for path in sorted(DOCS.glob("*.md")):
        for command in commands(path):
            if path.name not in RUN_BY_TESTS:
                assert not_run(command), f"{path.name}: no test runs `{command}`"


# -- the worlds the guides need ---------------------------------------------------------------


@pytest.fixture
def cluster(tmp_path_factory) -> Iterator[KubeControlPlane]:
    """A kube-apiserver of its own (a guide creates namespaces of fixed names), CRDs applied,
    with six GPU nodes of the quick start's pool (the service and the training job fit)."""
    with component_or_skip():
        plane = KubeControlPlane(tmp_path_factory.mktemp("kube"))
    try:
        plane.start()
        plane.apply_crds(REPO_ROOT / "crds")
        # the operator's namespace (balloon Deployments); helm install --create-namespace
        # accepts it existing
        plane.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "aiscaler"}})
        [pool] = yaml.safe_load(VALUES.read_text())["pools"]
        for i in range(6):
            plane.create(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": f"h100-{i}", "labels": pool["nodeSelector"]},
                    "status": {
                        "allocatable": {"nvidia.com/gpu": "8"},
                        "capacity": {"nvidia.com/gpu": "8"},
                        "conditions": [{"type": "Ready", "status": "True"}],
                    },
                }
            )
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def prometheus(tmp_path_factory) -> Iterator[Any]:
    """`start(history)`: a real Prometheus with `history`, stopped after the test."""
    started: list[PrometheusServer] = []

    def start(history: list[Series]) -> PrometheusServer:
        with component_or_skip():
            server = PrometheusServer(tmp_path_factory.mktemp("prometheus"))
        server.backfill(history)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def llama_history(end: float) -> Series:
    """Two days of the bundled trace as the Llama model's vLLM request counter (inference)."""
    labels = {"namespace": "inference", "model_name": MODEL}
    return request_counter(labels, bundled_requests(2), end, scale=0.012)  # ~13 requests/s


class Guide:
    """A guide's commands run in order; a planning tick before each read of the results."""

    def __init__(self, name: str, shell: Shell, op: Operator | None = None) -> None:
        self.commands = commands(DOCS / name)
        self.shell = shell
        self.op = op
        self.out: dict[str, str] = {}

    def run(self) -> dict[str, str]:
        for command in self.commands:
            if not_run(command):
                continue
            if command.startswith("helm ") and not (REPO_ROOT / "charts" / "aiscaler").exists():
                warnings.warn(f"charts/aiscaler is not in this checkout: {command}", stacklevel=1)
                continue
            if self.op is not None and re.match(r"kubectl (get|describe) ", command):
                self.tick()
            self.out[command] = self.shell.run(command).stdout
        return self.out

    def tick(self) -> None:
        assert self.op is not None
        kube = self.op.kube
        services = kube.list("aiscaler.dev/v1alpha1", "InferenceService")
        jobs = kube.list("aiscaler.dev/v1alpha1", "TrainingJob")
        report = run_tick(self.op, services, jobs, time.time())
        assert report.errors == [] and report.invalid == {}, report

    def output(self, pattern: str) -> str:
        [found] = [out for command, out in self.out.items() if re.search(pattern, command)]
        return found


def operator(cluster: KubeControlPlane, url: str) -> Operator:
    """The operator as the quick start's Helm values configure it (admin credentials here)."""
    values = yaml.safe_load(VALUES.read_text())
    return Operator(
        kube=KubeApi(cluster.new_api_client()),
        metrics=PrometheusMetrics(url, timeout_s=10),
        forecaster=HoltWintersForecaster(),
        settings=Settings(
            prometheus_url=url, pools=values["pools"], gpu_budget=values["gpuBudget"]
        ),
        namespace="aiscaler",
    )


def table(text: str) -> list[dict[str, str]]:
    """`kubectl get` output as rows keyed by column (cells by the header's positions: a column
    may be empty)."""
    header, *rows = text.splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    names = header.split()
    return [{n: row[a:b].strip() for n, (a, b) in zip(names, bounds, strict=True)} for row in rows]


# -- the guides -------------------------------------------------------------------------------


def test_quickstart(cluster, prometheus, tmp_path):
    server = prometheus([llama_history(time.time() - 60)])
    op = operator(cluster, server.url)
    guide = Guide("quickstart.md", Shell(tmp_path, cluster.kubeconfig), op)
    try:
        guide.run()
    finally:
        op.metrics.close()

    [llama] = table(guide.output(r"get ais"))
    assert llama["MODE"] == "predictive" and int(llama["DESIRED"]) >= 2
    assert llama["DEGRADED"] == "MetricsAvailable" and llama["LIMITED"], llama
    assert "Last Decision" in guide.output(r"describe ais")
    assert f"scaled 2 -> {llama['DESIRED']} replicas" in guide.output(r"get events")
    [training] = table(guide.output(r"get atj"))
    assert int(training["DESIRED"]) in (2, 4, 8)
    assert "llm-pretrain" in guide.output(r"get job")


@pytest.fixture
def adoption_world(cluster, prometheus, tmp_path):
    server = prometheus([llama_history(time.time() - 60)])
    shell = Shell(tmp_path, cluster.kubeconfig, {PROMETHEUS: server.url})
    op = operator(cluster, server.url)
    yield shell, op
    op.metrics.close()


def test_adoption(adoption_world):
    shell, op = adoption_world
    guide = Guide("adoption.md", shell, op)
    guide.run()

    recommended = guide.output(r"recommend --service")
    assert re.search(r"^now \(.*\): \d+ replicas from the current 3$", recommended, re.M)
    assert "aiscaler (tuned) uses " in recommended and "the current 3 replicas held static" in (
        recommended
    )
    exported = (shell.workdir / "llama.csv").read_text().splitlines()
    assert exported[0] == "timestamp_s,requests" and len(exported) > 250
    assert "aiscaler" in guide.output(r"simulate --trace llama.csv")
    assert (shell.workdir / "my-checkpoint" / "config.json").is_file()
    assert "exit code 2" in guide.output(r"invalid/")
    # Recommend mode: aiscaler decided, wrote no replicas, and said what it would do.
    rows = {r["NAME"]: r for r in table(guide.output(r"get ais,hpa").split("\n\n")[0])}
    recommend = rows["inferenceservice.aiscaler.dev/llama-3-70b"]
    assert recommend["MODE"] == "recommend" and recommend["REPLICAS"] == "2"
    assert "recommends 2 ->" in guide.output(r"get events")
    deployment = op.kube.get("apps/v1", "Deployment", "inference", "llama-3-70b")
    assert deployment["spec"]["replicas"] == 2


def test_tuning_and_the_benchmark(adoption_world):
    shell, _ = adoption_world
    [export] = [c for c in commands(DOCS / "adoption.md") if c.startswith("aiscaler export")]
    shell.run(export)  # the trace tuning.md replays

    for name in ("tuning.md", "benchmark.md"):
        out = Guide(name, shell).run()
        assert all("oracle" in text for text in out.values()), out


def test_troubleshooting_a_service_without_metrics(cluster, prometheus, tmp_path):
    server = prometheus([])  # Prometheus has nothing of the service
    op = operator(cluster, server.url)
    shell = Shell(tmp_path, cluster.kubeconfig)
    shell.run("kubectl create namespace inference")
    shell.run("kubectl apply -f examples/gitops/llama-3-70b-deployment.yaml")
    shell.run("kubectl apply -f examples/inferenceservice-vllm-h100.yaml")
    guide = Guide("troubleshooting.md", shell, op)
    try:
        guide.run()
    finally:
        op.metrics.close()

    [llama] = table(guide.output(r"get ais"))
    assert llama["DEGRADED"] == "MetricsMissing" and llama["REPLICAS"] == "2"
    assert "holding: no demand sample" in guide.output(r"describe ais")
    assert "MetricsMissing" in guide.output(r"get events")


def load_test(end: float) -> list[Series]:
    """One replica of vLLM, SGLang and TGI each, loaded 5 minutes per step at 1..8 requests/s
    after 10 idle minutes; from 6 requests/s on a fifth of the requests are slow, which breaks
    the latency objective (TTFT p95 2 s for vLLM and SGLang, e2e p95 20 s for TGI)."""
    engines = {  # served counter, latency histogram, fast and slow bucket, labels
        "vllm": (
            "vllm:request_success_total",
            "vllm:time_to_first_token_seconds",
            "0.5",
            "5",
            {"model_name": MODEL},
        ),
        "sglang": (
            "sglang:num_requests_total",
            "sglang:time_to_first_token_seconds",
            "0.5",
            "5",
            {},
        ),
        "tgi": ("tgi_request_success", "tgi_request_duration", "10", "+Inf", {}),
    }
    buckets = ["0.5", "1", "2.5", "5", "10", "25", "+Inf"]
    scrape, step_s, steps = 15, 300, 8
    start = end - (steps * step_s + 600)
    series: list[Series] = []
    for served, histogram, fast, slow, labels in engines.values():
        labels = {"namespace": "loadtest", **labels}
        counts = {"served": 0.0, **{le: 0.0 for le in buckets}}
        samples: dict[str, list[tuple[float, float]]] = {k: [] for k in counts}
        for i in range(round((end - start) / scrape) + 1):
            t = start + i * scrape
            step = math.floor((t - start - 600) / step_s) + 1
            rate = step if 1 <= step <= steps else 0
            n = rate * scrape
            slow_share = 0.2 if rate >= 6 else 0.0
            counts["served"] += n
            for le in buckets:
                fast_in = buckets.index(le) >= buckets.index(fast)
                slow_in = buckets.index(le) >= buckets.index(slow)
                counts[le] += n * ((1 - slow_share) * fast_in + slow_share * slow_in)
            for key, value in counts.items():
                samples[key].append((t, value))
        series.append(Series(served, labels, samples["served"]))
        series += [
            Series(f"{histogram}_bucket", {**labels, "le": le}, samples[le]) for le in buckets
        ]
    return series


def test_capacity_queries_read_the_capacity_off_a_load_test(prometheus, tmp_path):
    server = prometheus(load_test(time.time() - 30))
    out = Guide("capacity.md", Shell(tmp_path, substitutions={PROMETHEUS: server.url})).run()

    assert len(out) == 3  # vLLM, SGLang, TGI
    for command, text in out.items():
        [result] = json.loads(text)["data"]["result"]
        capacity = float(result["value"][1])
        # 5 requests/s held; the 2-minute windows straddling steps 5 and 6 read a little more.
        # rate() over float counters may land a rounding error below 5.
        assert 5.0 - 1e-9 <= capacity < 5.5, command
