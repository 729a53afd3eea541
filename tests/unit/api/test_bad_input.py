"""Bad input, generated: custom resources with values replaced, removed or added at random, and
settings files of random content. Each is accepted and handled, or rejected with messages that
name the field and carry no pydantic jargon; nothing raises."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness.specs import broken, example, json_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiscaler.core.types import PoolSpec
from aiscaler.handlers.mapping import parse_service, parse_training
from aiscaler.inputs import InputError
from aiscaler.settings import CONFIG_FILE_ENV, Settings, load_settings

POOLS = [PoolSpec(name="h100", gpus_per_node=8, max_nodes=4)]
SERVICE = example("inferenceservice-vllm-h100.yaml")
TRAINING = example("trainingjob-torchrun-elastic.yaml")


def assert_clear(problems: list[str]) -> None:
    assert problems, "an invalid object gets at least one problem"
    for line in problems:
        field, _, why = line.partition(": ")
        assert field.startswith(("spec", "apiVersion", "kind", "metadata")) and why, line
        assert "pydantic" not in line and "\n" not in line, line


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        broken(SERVICE).map(lambda body: (body, parse_service)),
        broken(TRAINING).map(lambda body: (body, parse_training)),
    )
)
def test_any_custom_resource_is_a_model_or_clear_problems(case: tuple[Any, Any]) -> None:
    body, parse = case
    parsed = parse(body, POOLS)
    if isinstance(parsed, list):
        assert_clear(parsed)
    else:  # a valid one keeps its rules
        sizes = getattr(parsed.spec, "replicas", None) or parsed.spec.workers
        assert sizes.min <= sizes.max


@settings(max_examples=100, deadline=None)
@given(st.one_of(json_values, st.dictionaries(st.text(max_size=6), json_values, max_size=3)))
def test_a_spec_of_any_shape_is_clear_problems(spec: Any) -> None:
    for body, parse in ((SERVICE, parse_service), (TRAINING, parse_training)):
        parsed = parse({**body, "spec": spec}, POOLS)
        if isinstance(parsed, list):
            assert_clear(parsed)


SETTING_NAMES = [*Settings.model_fields, "tickSeconds", "pool", "gpuBudget", "unknown"]
settings_documents = st.one_of(
    st.dictionaries(st.sampled_from(SETTING_NAMES), json_values, max_size=4).map(yaml.safe_dump),
    json_values.map(yaml.safe_dump),
    st.text(max_size=40),  # anything, valid YAML or not
    st.sampled_from(["a: [", "{", "- - -", "\t", "a: b: c", "%YAML 9.9\n---\n", "\x00", "&a *a"]),
)


@pytest.fixture
def no_settings_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AISCALER_"):
            monkeypatch.delenv(name)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(settings_documents)
def test_any_settings_file_is_settings_or_one_line_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_settings_environment: None, text: str
) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    monkeypatch.setenv(CONFIG_FILE_ENV, str(path))
    try:
        load_settings()
    except InputError as error:
        message = str(error)
        assert str(path) in message and "\n" not in message, message
        assert "pydantic" not in message and "errors.pydantic.dev" not in message, message
