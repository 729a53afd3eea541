"""The operator as users run it: `aiscaler run` as a process with the shipped RBAC (its
ClusterRole and the leader-election Role of deploy/aiscaler.yaml, the chart rendered) for a
test namespace."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests
import yaml

from .components import REPO_ROOT
from .kube import KubeControlPlane
from .process import free_port


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll `check` every half second until it returns something true; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def operator_kubeconfig(kube_api: KubeControlPlane, namespace: str, path: Path) -> Path:
    """A kubeconfig at `path` of service account `aiscaler` in `namespace`, bound to the shipped
    ClusterRole and, in `namespace`, to the leader-election Role."""
    docs = list(yaml.safe_load_all((REPO_ROOT / "deploy" / "aiscaler.yaml").read_text()))
    [role] = [d for d in docs if d["kind"] == "ClusterRole"]
    kube_api.apply(role)
    direct = kube_api.service_account_kubeconfig(namespace, "aiscaler", role["metadata"]["name"])
    for doc in docs:
        if doc["kind"] in ("Role", "RoleBinding"):
            doc = copy.deepcopy(doc)
            doc["metadata"]["namespace"] = namespace
            for subject in doc.get("subjects", []):
                subject["namespace"] = namespace
            kube_api.apply(doc, namespace)
    path.write_text(direct.read_text())
    return path


def through(kubeconfig: Path, server: str, path: Path) -> Path:
    """A copy of `kubeconfig` at `path` that reaches the API server at `server` (a proxy on
    127.0.0.1, plain HTTP) with the same credentials."""
    config = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    cluster["server"] = server
    del cluster["certificate-authority"]
    path.write_text(yaml.safe_dump(config))
    return path


class Replica:
    """One `aiscaler run` process watching `namespace` (its Lease and balloons there too), its
    output in `log`. `env` adds or overrides environment variables (AISCALER_* settings)."""

    def __init__(
        self,
        name: str,
        kubeconfig: Path,
        namespace: str,
        log: Path,
        env: Mapping[str, str],
    ) -> None:
        self.name = name
        self.log_path = log
        self.metrics_port, self.health_port = free_port(), free_port()
        self._log = log.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aiscaler.cli",
                "run",
                "--kubeconfig",
                str(kubeconfig),
                "--namespace",
                namespace,
                "--operator-namespace",
                namespace,
            ],
            env={
                **os.environ,
                "POD_NAME": name,
                "AISCALER_METRICS_PORT": str(self.metrics_port),
                "AISCALER_HEALTH_PORT": str(self.health_port),
                **env,
            },
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def get(self, port: int, path: str) -> requests.Response | None:
        try:
            return requests.get(f"http://127.0.0.1:{port}{path}", timeout=2)
        except requests.ConnectionError:
            return None

    def metric(self, name: str) -> float | None:
        response = self.get(self.metrics_port, "/metrics")
        if response is None:
            return None
        for line in response.text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    def kill(self) -> None:
        """SIGKILL: no clean-up, no Lease release, whatever it was doing."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
