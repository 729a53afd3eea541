"""Churn in the local cluster (issue 17's load test): InferenceServices created, changed and
deleted at a steady rate while the operator, installed with the chart, plans for all of them;
then what it left behind is checked.

Half the services scale a Deployment the user made (deleting the service must leave it alone),
half own theirs (created by the operator from `spec.template`; the garbage collector removes it
with the service). All services of a namespace read one idle vLLM engine of the workload
emulator, so every demand reading is valid (0 requests/s) and every service plans zero
replicas: no pods, which keeps a thousand services within a 2-core machine, while every tick
still observes, reads, forecasts, plans and reports on each of them.

Used by tests/e2e/test_churn.py (small) and bench/churn_bench.py (1,000 services, 10 minutes).
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from aiscaler.kube.manifests import SERVICE_LABEL

from .cluster import ClusterConfig, LocalCluster
from .emulators import Workload
from .helm import NAMESPACE, RELEASE, Helm
from .loop import API, install_chart
from .objects import deployment
from .release import ReleasedOperator

GROUP, VERSION = API.split("/")
PLURAL = "inferenceservices"
ENGINE = "churn-engine"  # the emulated vLLM engine every service of a namespace reads
MODEL = "churn-model"
SETTLE_S = 90.0  # after the churn: ticks, the garbage collector and the watch catch up
Key = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class ChurnLoad:
    services: int  # live custom resources, kept at this number
    namespaces: int
    rate: float  # creates, updates and deletes per second, each
    duration_s: float


def service_manifest(namespace: str, name: str, owned: bool, capacity: float) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": {"min": 0, "max": 4},
        "resources": {"gpusPerReplica": 1, "gpuType": "NVIDIA-L4", "pool": "l4"},
        "demand": {"preset": "vllm", "selector": {"matchLabels": {"model_name": MODEL}}},
        "capacity": {"perReplica": capacity},
        "coldStart": {"seconds": 20},
    }
    if owned:
        spec["template"] = {"spec": {"containers": [{"name": "vllm", "image": "vllm/vllm:x"}]}}
    else:
        spec["scaleTargetRef"] = {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    return {
        "apiVersion": API,
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def namespaces(load: ChurnLoad) -> list[str]:
    return [f"churn-{i}" for i in range(load.namespaces)]


def engines(load: ChurnLoad, start: float) -> list[Workload]:
    """One idle vLLM engine per namespace: what every service there reads its demand from."""
    return [
        Workload(ns, ENGINE, 1.0, start, 60.0, (0.0,), {"model_name": MODEL})
        for ns in namespaces(load)
    ]


@dataclass
class Leftovers:
    """What should not be there once the churn has settled."""

    orphans: list[str]  # owned Deployments whose InferenceService is gone
    user_deployments_gone: list[str]  # Deployments of deleted services that were not ours
    stale_statuses: list[str]  # live services whose status is not of their latest spec
    still_reported: list[str]  # deleted services the operator's /metrics still shows
    unreported: list[str]  # live services the operator's /metrics does not show
    annotated: list[str]  # live services kopf stored its state on (it must write nothing)

    def clean(self) -> bool:
        return not any(vars(self).values())


@dataclass
class Churn:
    """The services and their churn; every call is a real API request to the local cluster."""

    cluster: LocalCluster
    load: ChurnLoad
    seed: int = 0
    live: list[tuple[Key, bool]] = field(default_factory=list)  # (key, owned)
    deleted: list[tuple[Key, bool]] = field(default_factory=list)
    done: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        api = self.cluster.plane.api_client
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.rng = random.Random(self.seed)

    @property
    def namespaces(self) -> list[str]:
        return namespaces(self.load)

    def populate(self) -> None:
        core = client.CoreV1Api(self.cluster.plane.api_client)
        for ns in self.namespaces:
            core.create_namespace({"metadata": {"name": ns}})
        for _ in range(self.load.services):
            self.create()

    def create(self) -> None:
        serial = self.done["create"]
        namespace = self.namespaces[serial % len(self.namespaces)]
        name, owned = f"svc-{serial:05d}", serial % 2 == 1
        if not owned:
            self.apps.create_namespaced_deployment(namespace, deployment(name, replicas=0))
        manifest = service_manifest(namespace, name, owned, capacity=1.0)
        self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
        self.live.append(((namespace, name), owned))
        self.done["create"] += 1

    def update(self) -> None:
        """A new capacity (1 <-> 2 requests/s per replica): a spec change, a new generation."""
        (namespace, name), _owned = self.live[self.rng.randrange(len(self.live))]
        capacity = 1.0 + self.done["update"] % 2
        patch = {"spec": {"capacity": {"perReplica": capacity}}}
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch)
        self.done["update"] += 1

    def delete(self) -> None:
        i = self.rng.randrange(len(self.live))
        self.live[i], self.live[-1] = self.live[-1], self.live[i]
        (namespace, name), owned = self.live.pop()
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        self.deleted.append(((namespace, name), owned))
        self.done["delete"] += 1

    def run(self, every: Callable[[float], None], every_s: float) -> None:
        """Create, update and delete one service each, `rate` times a second, for the load's
        duration (the population stays the same); `every(now)` is called every `every_s`."""
        start = time.monotonic()
        period = 1.0 / self.load.rate
        steps = round(self.load.duration_s * self.load.rate)
        next_call = start
        for step in range(steps):
            now = time.monotonic()
            if now >= next_call:
                every(now - start)
                next_call += every_s
            time.sleep(max(0.0, start + step * period - now))
            self.create()
            self.update()
            self.delete()
        every(time.monotonic() - start)

    def leftovers(self, exposed: set[Key]) -> Leftovers:
        """Checked against the API server and `exposed`, the (namespace, name) of every
        InferenceService series in the operator's /metrics."""
        uids: dict[Key, str] = {}
        stale, annotated = [], []
        for ns in self.namespaces:
            for body in self.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)[
                "items"
            ]:
                meta = body["metadata"]
                uids[(ns, meta["name"])] = meta["uid"]
                if (body.get("status") or {}).get("observedGeneration") != meta["generation"]:
                    stale.append(f"{ns}/{meta['name']}")
                if any(a.startswith("kopf.zalando.org/") for a in meta.get("annotations") or {}):
                    annotated.append(f"{ns}/{meta['name']}")
        deployments = {
            (d.metadata.namespace, d.metadata.name): d
            for ns in self.namespaces
            for d in self.apps.list_namespaced_deployment(ns).items
        }
        orphans = [
            f"{ns}/{name}"
            for (ns, name), d in deployments.items()
            if SERVICE_LABEL in (d.metadata.labels or {})
            and not any(
                ref.uid == uids.get((ns, name)) for ref in d.metadata.owner_references or []
            )
        ]
        live = {key for key, _owned in self.live}
        return Leftovers(
            orphans=sorted(orphans),
            user_deployments_gone=sorted(
                f"{ns}/{name}"
                for (ns, name), owned in self.deleted
                if not owned and (ns, name) not in deployments
            ),
            stale_statuses=sorted(stale),
            still_reported=sorted(f"{ns}/{n}" for ns, n in exposed - live if ns in self.namespaces),
            unreported=sorted(f"{ns}/{n}" for ns, n in live - exposed),
            annotated=sorted(annotated),
        )


def exposed_services(metrics_text: str) -> set[Key]:
    """(namespace, name) of every InferenceService in the operator's /metrics."""
    keys = set()
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            labels = sample.labels
            if "name" in labels and labels.get("kind", "InferenceService") == "InferenceService":
                keys.add((labels["namespace"], labels["name"]))
    return keys


def errors_by_stage(metrics_text: str) -> dict[str, float]:
    """The operator's aiscaler_errors_total, by stage, where above zero."""
    return {
        sample.labels["stage"]: sample.value
        for family in text_string_to_metric_families(metrics_text)
        if family.name == "aiscaler_errors"
        for sample in family.samples
        if sample.name == "aiscaler_errors_total" and sample.value > 0
    }


# The operator logs JSON lines (kopf's formatter); anything else there is a crash's output.
PROBLEM = re.compile(r'"severity": "(?!debug"|info")|Traceback|^(?!\{)')


def log_problems(log: Path) -> list[str]:
    """The lines of the operator's log above info (tracebacks and lines not JSON included)."""
    return [line for line in log.read_text().splitlines() if PROBLEM.search(line)]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@contextmanager
def released(workdir: Path, churn_load: ChurnLoad) -> Iterator[tuple[Churn, ReleasedOperator]]:
    """The local cluster with the chart installed, the churn's namespaces populated and the
    operator running; everything stopped on exit."""
    cluster = LocalCluster(workdir / "cluster", ClusterConfig.load())
    idle = engines(churn_load, time.time() - 3600)  # an hour of idle engines so far
    cluster.start(idle)
    operator = ReleasedOperator(cluster, workdir / "operator", NAMESPACE, RELEASE)
    try:
        install_chart(cluster, Helm(Helm.installed().binary, cluster.kubeconfig))
        churn = Churn(cluster, churn_load)
        churn.populate()
        cluster.set_workloads(idle)
        operator.start()
        yield churn, operator
    finally:
        operator.stop()
        cluster.stop()


@dataclass
class Outcome:
    """What one churn run measured."""

    first_status_s: float  # from the operator's start until every service had a status
    rss_mb: list[tuple[float, float]]  # (seconds into the churn, the operator's RSS)
    done: Counter[str]
    leftovers: Leftovers
    settled_s: float  # from the churn's end until nothing was left over (or the timeout)
    errors: dict[str, float]  # aiscaler_errors_total by stage, where above zero
    log_problems: list[str]
    ticks: int
    tick_mean_s: float


def settle(churn: Churn, operator: ReleasedOperator, timeout_s: float) -> tuple[Leftovers, float]:
    """Wait until nothing is left over, or `timeout_s`: what is left, and how long it took."""
    start = time.monotonic()
    while True:
        left = churn.leftovers(exposed_services(operator.metrics()))
        waited = time.monotonic() - start
        if left.clean() or waited > timeout_s:
            return left, waited
        time.sleep(2.0)


def churn_and_settle(churn: Churn, operator: ReleasedOperator, sample_every_s: float) -> Outcome:
    """The whole measurement, on a populated cluster whose operator has just started."""
    first, first_s = settle(churn, operator, SETTLE_S + churn.load.services / 10)
    if not first.clean():
        raise AssertionError(f"the start-up never settled: {first}")
    assert operator.process is not None and operator.process.pid is not None
    pid = operator.process.pid
    rss: list[tuple[float, float]] = []
    churn.run(lambda t: rss.append((t, rss_mb(pid))), sample_every_s)
    leftovers, settled_s = settle(churn, operator, SETTLE_S)
    text = operator.metrics()
    ticks = _tick_histogram(text)
    return Outcome(
        first_status_s=first_s,
        rss_mb=rss,
        done=churn.done,
        leftovers=leftovers,
        settled_s=settled_s,
        errors=errors_by_stage(text),
        log_problems=log_problems(operator.log),
        ticks=int(ticks["count"]),
        tick_mean_s=ticks["sum"] / max(1.0, ticks["count"]),
    )


def _tick_histogram(metrics_text: str) -> dict[str, float]:
    """Count and sum of aiscaler_tick_duration_seconds."""
    return {
        sample.name.rsplit("_", 1)[1]: sample.value
        for family in text_string_to_metric_families(metrics_text)
        if family.name == "aiscaler_tick_duration_seconds"
        for sample in family.samples
        if sample.name.endswith(("_count", "_sum"))
    }
