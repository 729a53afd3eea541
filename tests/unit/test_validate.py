"""`aiscaler validate`: custom resources and settings checked offline with the operator's own
models and query building; one `FILE:LINE: Kind ns/name: field: problem` line per problem and
exit code 2; other documents skipped; the pre-commit hook of examples/pre-commit runs it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiscaler.cli import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
VALID = sorted(EXAMPLES.glob("*.yaml"))
INVALID = sorted((EXAMPLES / "invalid").glob("*.yaml"))
POOLS = [{"name": "h100", "gpuType": "H100", "gpusPerNode": 8, "maxNodes": 4}]


def validate(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, list[str]]:
    code = main(["validate", *map(str, args)])
    out = capsys.readouterr()
    assert out.err == ""
    return code, out.out.splitlines()


def service(name: str = "llm", **spec: Any) -> dict[str, Any]:
    body = {
        "scaleTargetRef": {"kind": "Deployment", "name": name},
        "replicas": {"min": 1, "max": 4},
        "capacity": {"perReplica": 2.0},
    }
    body.update(spec)
    return {
        "apiVersion": "aiscaler.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": body,
    }


def write(tmp_path: Path, *documents: Any, name: str = "manifests.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


def test_the_examples_are_valid_and_other_kinds_are_skipped(capsys):
    code, lines = validate(capsys, *VALID, *(EXAMPLES / "gitops").glob("*.yaml"))

    assert code == 0
    # three examples and the GitOps Deployment, Application, Kustomization, HelmRelease: only
    # the three aiscaler resources are checked
    assert lines == ["3 custom resources valid"]


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_each_invalid_example_is_one_line_at_the_field(capsys, path: Path):
    expected = re.search(r"# expect-error: (\S+)", path.read_text()).group(1)

    code, lines = validate(capsys, path)

    assert code == 2
    [line] = lines
    where, kind, rest = line.split(": ", 2)[0], line.split(": ")[1], line.split(": ", 2)[2]
    assert kind.split()[0] in ("InferenceService", "TrainingJob")
    assert rest.startswith(f"{expected}:") or rest.startswith(f"{expected.rsplit('.', 1)[0]}:")
    file, number = where.rsplit(":", 1)
    assert file == str(path)
    # the line is the field's (or, for a missing one, its parent's), not the document's start
    keys = rest.split(":")[0].split(".")
    text = path.read_text().splitlines()[int(number) - 1].strip()
    assert any(text.startswith(f"{key}:") for key in keys), (line, text)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        (
            {"demand": {"preset": "tgi"}, "slo": {"latency": {"metric": "ttft"}}},
            "spec.slo.latency: the tgi preset has no 'ttft' latency metric; it has ['e2e', "
            "'queue']",
        ),
        (
            {"demand": {"preset": "triton", "unit": "tokensPerSecond"}},
            "spec.demand: the triton preset has no generated-token counter",
        ),
        (
            {"demand": {"selector": {"matchLabels": {"app.kubernetes.io/name": "llm"}}}},
            "spec.demand: selector key 'app.kubernetes.io/name' is not a Prometheus label name",
        ),
        (
            {"demand": {"preset": "custom", "query": "sum(rate(x[5m])"}},
            "spec.demand.query: the query is not valid PromQL",
        ),
        (
            {"demand": {"preset": "custom", "query": 'info(up{job="x"})'}},
            "spec.demand.query: ",
        ),
    ],
)
def test_queries_are_built_and_confined_as_the_operator_would(capsys, tmp_path, spec, says):
    code, lines = validate(capsys, write(tmp_path, service(**spec)))

    assert code == 2 and len(lines) == 1, lines
    assert f": InferenceService team-a/llm: {says}" in lines[0]


def test_a_training_jobs_throughput_query_goes_through_the_guard(capsys, tmp_path):
    job = {
        "apiVersion": "aiscaler.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "train"},
        "spec": {
            "workers": {"max": 4},
            "template": {"spec": {"containers": [{"name": "w", "image": "i"}]}},
            "throughput": {"query": "rate(samples_total[5m]) +"},
        },
    }
    code, lines = validate(capsys, write(tmp_path, job))

    assert code == 2
    assert (
        "TrainingJob default/train: spec.throughput.query: the query is not valid PromQL"
        in lines[0]
    )


def test_pools_are_checked_against_the_settings_or_the_helm_values(capsys, tmp_path):
    unknown = service("a", resources={"pool": "a100"})
    too_big = service("b", resources={"pool": "h100", "gpusPerReplica": 16})
    manifests = write(tmp_path, unknown, too_big)
    settings = write(tmp_path, {"pools": POOLS, "tick_seconds": 30}, name="settings.yaml")
    values = write(tmp_path, {"image": {"tag": "x"}, "pools": POOLS}, name="values.yaml")

    assert validate(capsys, manifests) == (0, ["2 custom resources valid"])  # pools unknown
    for option, path in (("--settings", settings), ("--pools-from", values)):
        code, lines = validate(capsys, option, path, manifests)
        assert code == 2
        assert lines[0].endswith("spec.resources.pool: unknown GPU pool 'a100' (known: ['h100'])")
        assert lines[1].endswith(
            "spec.resources: 16 GPUs per pod do not fit pool h100's nodes of 8 GPUs"
        )
        text = manifests.read_text().splitlines()
        at = [lines[0].split(":")[1], lines[1].split(":")[1]]
        assert [text[int(n) - 1].split(":")[0].strip() for n in at] == ["pool", "resources"]


def test_a_settings_file_is_checked_without_the_environment(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("AISCALER_TICK_SECONDS", "not a number")  # not the file's problem
    bad = write(tmp_path, {"pools": [{**POOLS[0], "gpusPerNode": 0}], "tick_second": 5})

    code, lines = validate(capsys, "--settings", bad, write(tmp_path, service(), name="ok.yaml"))

    assert code == 2
    assert lines == [
        f"{bad}: settings: pools.0.gpusPerNode: Input should be greater than or equal to 1 (got 0)",
        f"{bad}: settings: tick_second: unknown key (did you mean tick_seconds?)",
    ]


def test_files_that_cannot_be_read_are_one_line_each(capsys, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec:\n  replicas: [1,\n")
    wrong_kind = write(tmp_path, {**service(), "kind": "InferenceServce"}, name="kind.yaml")

    code, lines = validate(capsys, broken, tmp_path / "missing.yaml", wrong_kind)

    assert code == 2
    assert lines[0].startswith(f"{broken} line 3, column 1: ")
    assert lines[0].endswith("; not valid YAML")
    assert lines[1:] == [
        f"{tmp_path / 'missing.yaml'}: cannot read it: No such file or directory",
        f"{wrong_kind}:2: InferenceServce team-a/llm: kind: not an aiscaler kind (known: "
        "InferenceService, TrainingJob)",
    ]


def test_the_pre_commit_hook_example_runs_validate_on_the_repositorys_yaml(capsys):
    [repo] = yaml.safe_load((EXAMPLES / "pre-commit" / ".pre-commit-config.yaml").read_text())[
        "repos"
    ]
    [hook] = repo["hooks"]
    assert (repo["repo"], hook["language"]) == ("local", "system")
    command = shlex.split(hook["entry"]) + list(hook.get("args", []))
    assert command[0] == "aiscaler"
    # What pre-commit passes: the files matching `files` and not `exclude`.
    files = [
        p
        for p in sorted(REPO.rglob("*.y*ml"))
        if ".venv" not in p.parts
        and ".cache" not in p.parts
        and re.search(hook["files"], str(p.relative_to(REPO)))
        and not re.search(hook["exclude"], str(p.relative_to(REPO)))
    ]
    valid = [p for p in files if "invalid" not in p.parts]
    assert EXAMPLES / "inferenceservice-vllm-h100.yaml" in valid

    assert main([*command[1:], *map(str, valid)]) == 0
    assert main([*command[1:], *map(str, files)]) == 2  # examples/invalid is what it stops
    capsys.readouterr()
