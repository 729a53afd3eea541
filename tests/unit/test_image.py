"""The image and its Deployment agree on running as non-root with the shipped model."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def dockerfile_instructions() -> list[tuple[str, str]]:
    lines = (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    return [
        (line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1].strip())
        for line in lines
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_image_runs_as_a_numeric_non_root_user() -> None:
    users = [arg for op, arg in dockerfile_instructions() if op == "USER"]
    assert users, "the image must set USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER must be a numeric non-root uid, got {uid!r}"


def test_image_ships_the_checkpoint_it_points_the_operator_at() -> None:
    instructions = dockerfile_instructions()
    env = " ".join(arg for op, arg in instructions if op == "ENV")
    assert "AISCALER_MODEL_PATH=/opt/aiscaler/model/checkpoint" in env
    copies = [arg for op, arg in instructions if op == "COPY"]
    assert "model/checkpoint/ model/checkpoint/" in copies
    assert (ROOT / "model" / "checkpoint" / "config.json").is_file()


def test_operator_deployment_refuses_root_and_runs_the_image_entrypoint() -> None:
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "operator.yaml").read_text()))
    deployment = next(d for d in docs if d and d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["args"] == ["run"]
