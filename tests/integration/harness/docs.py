"""Running the commands of the documentation as a user would: the lines of its ```bash blocks,
in order, in a shell whose PATH has `aiscaler` (this checkout's code), `kubectl` and `helm`, in a
working folder that sees the repository's examples/, model/ and charts/."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from .components import REPO_ROOT, find_binary, kubectl_binary

DOCS = REPO_ROOT / "docs"


def commands(path: Path) -> list[str]:
    """The commands of a Markdown file: every line of its ```bash blocks, comments removed."""
    found: list[str] = []
    inside = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            inside = not inside and line.strip() in ("```bash", "```sh")
            continue
        command = _without_comment(line).strip() if inside else ""
        if command:
            found.append(command)
    return found


def _without_comment(line: str) -> str:
    quote = ""
    for i, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


class Shell:
    """Runs documented commands in `workdir` (examples/, model/, charts/ linked in), against the
    kubeconfig given; `substitutions` replace placeholders such as the Prometheus URL."""

    def __init__(
        self, workdir: Path, kubeconfig: Path | None = None, substitutions: Mapping[str, str] = {}
    ) -> None:
        self.workdir = workdir
        self.substitutions = dict(substitutions)
        bin_dir = workdir / ".bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        aiscaler = bin_dir / "aiscaler"
        aiscaler.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m aiscaler.cli "$@"\n')
        aiscaler.chmod(0o755)
        (bin_dir / "kubectl").symlink_to(kubectl_binary())
        helm = REPO_ROOT / ".cache" / "bin" / "helm"
        if helm.exists():
            (bin_dir / "helm").symlink_to(find_binary("kube", "helm"))
        for name in ("examples", "model", "charts", "crds"):
            if (REPO_ROOT / name).exists():
                (workdir / name).symlink_to(REPO_ROOT / name)
        self.env = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(REPO_ROOT / "operator"),
        }
        if kubeconfig is not None:
            self.env["KUBECONFIG"] = str(kubeconfig)

    def run(self, command: str, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
        """Run one documented command; fail with its output when it fails."""
        for placeholder, value in self.substitutions.items():
            command = command.replace(placeholder, value)
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"{command}\nexit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done
