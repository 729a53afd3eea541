"""A local GPU cluster: the test control plane (etcd + kube-apiserver) with kube-controller-manager,
kube-scheduler and kwok, fake GPU nodes in the pools of hack/local-cluster.yaml, a real
Prometheus, and the emulators (harness.emulators) of the workloads' metrics and of the cluster
autoscaler. Deployments make pods, the scheduler places them on GPU nodes (or leaves them
Pending), kwok makes them Ready a cold start later.

    python -m harness.cluster up [--dir .cache/cluster]    # started in the background
    python -m harness.cluster down [--dir .cache/cluster]

`up` leaves the processes running and their ids in DIR/state.json; `down` stops them. Tests use
`LocalCluster(...).start()` / `.stop()` directly (tests/e2e/conftest.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from .components import REPO_ROOT, ComponentFailed, find_binary
from .emulators import Pool, Workload, fake_node, history, write_workloads
from .kube import KubeControlPlane
from .process import ManagedProcess, free_port
from .prometheus import PrometheusServer

CONFIG = REPO_ROOT / "hack" / "local-cluster.yaml"
STAGES = REPO_ROOT / "hack" / "kwok-stages.yaml"
DEFAULT_DIR = REPO_ROOT / ".cache" / "cluster"
# Controllers the loop needs: pods from Deployments and Jobs, garbage collection of owned
# objects, namespace deletion, PVC binding. Node lifecycle is left out: kwok's nodes need no
# heartbeat then.
CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "job-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "pod-garbage-collector-controller",
    "persistentvolume-binder-controller",
    "endpointslice-controller",
)
START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class ClusterConfig:
    cold_start_s: float
    node_idle_s: float
    tick_s: float
    scrape_interval_s: float
    system_node: Mapping[str, str]
    pools: tuple[Pool, ...]
    pool_values: tuple[Mapping[str, Any], ...]  # the pools as the chart's values take them
    measurement: Mapping[str, float]  # the chart's `measurement` value
    source: Path  # the file it was read from (the emulators read it too)

    @classmethod
    def load(cls, path: Path = CONFIG) -> ClusterConfig:
        raw = yaml.safe_load(path.read_text())
        return cls(
            cold_start_s=float(raw["coldStartSeconds"]),
            node_idle_s=float(raw["nodeIdleSeconds"]),
            tick_s=float(raw["tickSeconds"]),
            scrape_interval_s=float(raw["scrapeIntervalSeconds"]),
            system_node=raw["systemNode"],
            pools=tuple(Pool.from_values(p, raw["gpuNode"]) for p in raw["pools"]),
            pool_values=tuple(raw["pools"]),
            measurement=raw["measurement"],
            source=path,
        )

    def helm_values(self, prometheus_url: str) -> dict[str, Any]:
        """The chart's values for this cluster: its pools, tick and Prometheus."""
        return {
            "pools": list(self.pool_values),
            "tickSeconds": self.tick_s,
            "measurement": dict(self.measurement),
            "prometheus": {"url": prometheus_url},
        }


class LocalCluster:
    """All the processes of the local cluster, their data and logs in `workdir`."""

    def __init__(self, workdir: Path, config: ClusterConfig) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.config = config
        self.plane = KubeControlPlane(workdir)
        self.kubeconfig = self.plane.kubeconfig
        self.workloads_file = workdir / "workloads.yaml"
        self.operator_targets = workdir / "aiscaler-targets.json"  # file_sd for the operator
        self.emulators_port = free_port()
        interval = f"{config.scrape_interval_s:g}s"
        self.prometheus = PrometheusServer(
            workdir / "prometheus",
            scrape_interval=interval,
            scrape_configs=[
                {
                    "job_name": "vllm",
                    "honor_labels": True,  # the engines' own namespace/job/instance labels
                    "static_configs": [{"targets": [f"127.0.0.1:{self.emulators_port}"]}],
                },
                {
                    "job_name": "aiscaler",
                    "file_sd_configs": [{"files": [str(self.operator_targets)]}],
                },
            ],
        )
        self.controller_manager = ManagedProcess(
            "kube-controller-manager", self._controller_manager_argv(), workdir / "kcm.log"
        )
        self.scheduler = ManagedProcess(
            "kube-scheduler", self._scheduler_argv(), workdir / "kube-scheduler.log"
        )
        self.kwok = ManagedProcess("kwok", self._kwok_argv(), workdir / "kwok.log")
        self.emulators = ManagedProcess(
            "emulators",
            [
                sys.executable,
                "-m",
                "harness.emulators",
                "--kubeconfig",
                str(self.kubeconfig),
                "--cluster",
                str(config.source),
                "--workloads",
                str(self.workloads_file),
                "--port",
                str(self.emulators_port),
            ],
            workdir / "emulators.log",
            env={"PYTHONPATH": os.pathsep.join(map(str, python_path()))},
        )

    # -- processes -------------------------------------------------------------------------

    def _controller_manager_argv(self) -> list[str]:
        return [
            str(find_binary("kube", "kube-controller-manager")),
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            f"--controllers={','.join(CONTROLLERS)}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            f"--cert-dir={self.workdir / 'kcm-certs'}",
            # Deployments of one-replica steps in a compressed timeline: no sync backoff.
            "--concurrent-deployment-syncs=10",
        ]

    def _scheduler_argv(self) -> list[str]:
        return [
            str(find_binary("kube", "kube-scheduler")),
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            f"--cert-dir={self.workdir / 'scheduler-certs'}",
        ]

    def _kwok_argv(self) -> list[str]:
        stages = list(yaml.safe_load_all(STAGES.read_text()))
        for stage in stages:
            if stage["metadata"]["name"] == "pod-ready":
                stage["spec"]["delay"]["durationMilliseconds"] = round(
                    self.config.cold_start_s * 1000
                )
        path = self.workdir / "kwok-stages.yaml"
        path.write_text(yaml.safe_dump_all(stages))
        return [
            str(find_binary("kube", "kwok")),
            f"--kubeconfig={self.kubeconfig}",
            f"--config={path}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--server-address=127.0.0.1:{free_port()}",
            "--node-lease-duration-seconds=0",
        ]

    def processes(self) -> list[ManagedProcess]:
        """Every process, in start order."""
        return [
            self.plane.etcd,
            self.plane.apiserver,
            self.controller_manager,
            self.scheduler,
            self.kwok,
            self.prometheus.process,
            self.emulators,
        ]

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, history_of: Sequence[Workload] = ()) -> None:
        """Start everything. The metrics these workloads' engines would have exposed until now
        are written into Prometheus first (a service that ran before), and the emulator goes on
        serving them with replicas enough for the demand, so their series have no gap (a rate
        over a gap reads low); `set_workloads` attaches them to their Deployments' Ready pods,
        counters continued."""
        write_workloads(self.workloads_file, [replace(w, attached=False) for w in history_of])
        self.operator_targets.write_text("[]")
        self.prometheus.backfill(history(history_of, time.time()))
        try:
            self.plane.start()
            core = client.CoreV1Api(self.plane.api_client)
            for node in self.initial_nodes():
                core.create_node(node)
            for process in (self.controller_manager, self.scheduler, self.kwok):
                process.start()
            self.prometheus.start()
            self.emulators.start()
            self._wait_nodes_ready(core)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for process in reversed(self.processes()):
            process.stop()
        self.plane.stop()

    def initial_nodes(self) -> list[dict[str, Any]]:
        system = self.config.system_node
        nodes = [
            fake_node(
                "system-0",
                {"kubernetes.io/hostname": "system-0", "type": "kwok"},
                system["cpu"],
                system["memory"],
                0,
            )
        ]
        for pool in self.config.pools:
            for i in range(pool.min_nodes):
                name = f"{pool.name}-{i}"
                nodes.append(
                    fake_node(
                        name, pool.node_labels(name), pool.cpu, pool.memory, pool.gpus_per_node
                    )
                )
        return nodes

    def _wait_nodes_ready(self, core: client.CoreV1Api) -> None:
        def ready() -> bool:
            nodes = core.list_node().items
            return all(
                any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
                for n in nodes
            )

        self.kwok.wait_until(ready, "every node Ready", START_TIMEOUT_S)

    def set_workloads(self, workloads: Iterable[Workload]) -> None:
        """Replace the emulated workloads (the emulator reads the file when it changes); a
        workload it knew keeps its counters."""
        write_workloads(self.workloads_file, workloads)

    def scrape_operator(self, port: int) -> None:
        """Have Prometheus scrape an operator's /metrics on 127.0.0.1:port."""
        targets = [{"targets": [f"127.0.0.1:{port}"], "labels": {"pod": "aiscaler"}}]
        self.operator_targets.write_text(json.dumps(targets))

    # -- detached (up / down) ----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "kubeconfig": str(self.kubeconfig),
            "prometheus": self.prometheus.url,
            "workloads": str(self.workloads_file),
            "operator_targets": str(self.operator_targets),
            "pids": {p.name: p.pid for p in self.processes() if p.pid is not None},
        }


def python_path() -> list[Path]:
    """What the emulators and the operator import: this checkout's package and the harness."""
    return [REPO_ROOT / "operator", REPO_ROOT / "tests" / "integration"]


def stop_pids(pids: Mapping[str, int], timeout: float = 15.0) -> list[str]:
    """SIGTERM each process group (last started first), SIGKILL what is left after `timeout`;
    returns the names that were still running."""
    stopped = []
    for name, pid in reversed(list(pids.items())):
        try:
            os.killpg(pid, signal.SIGTERM)
            stopped.append(name)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.killpg(pid, signal.SIGKILL)
    return stopped


def up(directory: Path) -> dict[str, Any]:
    """Start a cluster whose processes outlive this one; its state goes to DIR/state.json."""
    state_file = directory / "state.json"
    if state_file.exists():
        raise ComponentFailed(f"a cluster is already up ({state_file}): `make cluster-down` first")
    directory.mkdir(parents=True, exist_ok=True)
    cluster = LocalCluster(directory, ClusterConfig.load())
    cluster.start()
    state = cluster.state()
    state_file.write_text(json.dumps(state, indent=2))
    return state


def down(directory: Path) -> list[str]:
    state_file = directory / "state.json"
    if not state_file.exists():
        return []
    stopped = stop_pids(json.loads(state_file.read_text())["pids"])
    state_file.unlink()
    return stopped


def main() -> int:
    parser = argparse.ArgumentParser(description="the local GPU cluster (docs/local-cluster.md)")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state, data and logs")
    args = parser.parse_args()
    if args.action == "down":
        stopped = down(args.dir)
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        return 0
    started = time.monotonic()
    try:
        state = up(args.dir)
    except ComponentFailed as error:
        print(f"cluster-up: {error}", file=sys.stderr)
        return 1
    print(
        f"local cluster up in {time.monotonic() - started:.0f}s (logs in {args.dir})\n"
        f"  export KUBECONFIG={state['kubeconfig']}\n"
        f"  .venv/bin/kubectl get nodes -L nvidia.com/gpu.product\n"
        f"  Prometheus: {state['prometheus']}\n"
        f"  workloads to emulate: {state['workloads']} (docs/local-cluster.md)\n"
        f"  make cluster-down   # stops it"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
