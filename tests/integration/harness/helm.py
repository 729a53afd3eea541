"""helm (built from its Go module into .cache/bin) run on charts/aiscaler.

`helm template` is given the Kubernetes version the tests' control plane runs: helm built from
source without its release ldflags assumes v1.20, below the chart's kubeVersion. Against a
cluster (`install`, `upgrade`) helm asks the API server instead.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from .components import REPO_ROOT, find_binary

CHART = REPO_ROOT / "charts" / "aiscaler"
KUBE_VERSION = "1.37"  # kube-apiserver's minor version (hack/k8s/go.mod)
RELEASE = "aiscaler"
NAMESPACE = "aiscaler"


@dataclass(frozen=True)
class Helm:
    binary: Path
    kubeconfig: Path | None = None

    @classmethod
    def installed(cls, kubeconfig: Path | None = None) -> Helm:
        return cls(find_binary("helm", "helm"), kubeconfig)

    def run(self, *args: str) -> str:
        """helm ARGS; raises CalledProcessError (with stderr) when helm fails."""
        argv = [str(self.binary), *args]
        if self.kubeconfig is not None:
            argv += ["--kubeconfig", str(self.kubeconfig)]
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    def template(self, *args: str) -> str:
        """The chart rendered as release `aiscaler` in namespace `aiscaler`."""
        return self.run(
            "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
            "--kube-version", f"{KUBE_VERSION}.0", *args,
        )  # fmt: skip

    def install(self, *args: str) -> str:
        """`helm upgrade --install` into the cluster; returns helm's output (with NOTES)."""
        return self.run(
            "upgrade", "--install", RELEASE, str(CHART), "--namespace", NAMESPACE,
            "--create-namespace", "--wait", "--timeout", "3m", *args,
        )  # fmt: skip

    def uninstall(self) -> str:
        return self.run("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait")


def render_deploy(helm: Helm) -> str:
    """What deploy/aiscaler.yaml holds: the chart with its defaults (`make deploy`)."""
    return helm.template()
