"""The operator of an installed Helm release, run on this machine as its Deployment describes it.

kwok's pods run no containers, so the operator pod the chart creates is only a stand-in. This
runs the real process instead: the container's entrypoint (`aiscaler run`, the image's) with its
arguments, its environment (fieldRefs resolved), its ConfigMap volumes written to files at the
paths the environment names, and the identity of the pod's ServiceAccount (a bound token minted
through the TokenRequest API), so every API call it makes is held to the chart's RBAC. The
one change: the metrics and health ports are free local ports (AISCALER_METRICS_PORT /
AISCALER_HEALTH_PORT, which win over the settings file), and Prometheus is told to scrape it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import requests
from kubernetes import client

from .cluster import LocalCluster, python_path
from .components import ComponentFailed
from .process import ManagedProcess, free_port

START_TIMEOUT_S = 120.0


class ReleasedOperator:
    """`aiscaler run` for the Deployment `name` in `namespace` (the chart's release)."""

    def __init__(self, cluster: LocalCluster, workdir: Path, namespace: str, name: str) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.namespace = namespace
        self.name = name
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.process: ManagedProcess | None = None
        self.runs = 0

    def start(self) -> None:
        """Start it from the Deployment as it is in the API now; wait for /readyz."""
        if self.process is not None and self.process.is_running():
            raise RuntimeError("the operator is already running")
        self.runs += 1
        run_dir = self.workdir / f"run-{self.runs}"
        run_dir.mkdir(parents=True)
        api = self.cluster.plane.api_client
        deployment = client.AppsV1Api(api).read_namespaced_deployment(self.name, self.namespace)
        pod = api.sanitize_for_serialization(deployment.spec.template)["spec"]
        [container] = pod["containers"]
        mounts = self._volumes(pod, container, run_dir)
        env = {
            **self._env(container, mounts),
            "AISCALER_METRICS_PORT": str(self.metrics_port),
            "AISCALER_HEALTH_PORT": str(self.health_port),
            "PYTHONPATH": os.pathsep.join(map(str, python_path())),
        }
        kubeconfig = self.cluster.plane.token_kubeconfig(
            self.namespace, pod.get("serviceAccountName") or "default"
        )
        argv = [
            sys.executable, "-m", "aiscaler.cli", "run",  # the image's entrypoint
            *container.get("args", []), "--kubeconfig", str(kubeconfig),
        ]  # fmt: skip
        self.process = ManagedProcess("aiscaler", argv, run_dir / "operator.log", env=env)
        self.process.start()
        self.process.wait_until(self._ready, "ready /readyz", START_TIMEOUT_S)
        self.cluster.scrape_operator(self.metrics_port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def restart(self) -> None:
        """What a rollout does: the old process goes, a new one starts from the new spec."""
        self.stop()
        self.start()

    @property
    def log(self) -> Path:
        if self.process is None:
            raise RuntimeError("not started")
        return self.process.log_path

    def metrics(self) -> str:
        return requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def _ready(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.health_port}/readyz"
            return requests.get(url, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def _volumes(
        self, pod: dict[str, Any], container: dict[str, Any], run_dir: Path
    ) -> dict[str, Path]:
        """Container mount path -> local folder holding what the volume would."""
        core = client.CoreV1Api(self.cluster.plane.api_client)
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        local: dict[str, Path] = {}
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            folder = run_dir / "volumes" / mount["name"]
            folder.mkdir(parents=True)
            if "configMap" in volume:
                config_map = core.read_namespaced_config_map(
                    volume["configMap"]["name"], self.namespace
                )
                for key, text in (config_map.data or {}).items():
                    (folder / key).write_text(text)
            elif "emptyDir" not in volume:
                raise ComponentFailed(
                    f"volume {mount['name']}: only configMap and emptyDir run here"
                )
            local[mount["mountPath"]] = folder
        return local

    def _env(self, container: dict[str, Any], mounts: dict[str, Path]) -> dict[str, str]:
        fields = {"metadata.name": f"{self.name}-local", "metadata.namespace": self.namespace}
        env: dict[str, str] = {}
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = _local_path(var["value"], mounts)
            else:
                env[var["name"]] = fields[var["valueFrom"]["fieldRef"]["fieldPath"]]
        return env


def _local_path(value: str, mounts: dict[str, Path]) -> str:
    """`value` with the container path of the deepest mount it lies under made local."""
    for mount_path in sorted(mounts, key=len, reverse=True):
        prefix = mount_path.rstrip("/") + "/"
        if value.startswith(prefix):
            return f"{mounts[mount_path]}/{value[len(prefix) :]}"
    return value


def wait_for(what: str, check: Any, timeout: float, every: float = 1.0) -> Any:
    """Poll `check()` until it returns something true; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)
