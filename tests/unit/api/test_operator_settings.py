"""Operator settings from defaults, a YAML file and the environment, and their validation."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pydantic
import pytest

from aiscaler.inputs import InputError
from aiscaler.settings import CONFIG_FILE_ENV, Settings, load_settings

H100_POOL = {
    "name": "h100",
    "gpuType": "NVIDIA-H100-80GB-HBM3",
    "gpusPerNode": 8,
    "nodeSelector": {"node.kubernetes.io/instance-type": "p5.48xlarge"},
    "maxNodes": 4,
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AISCALER_* variable of the machine running the tests leaks in."""
    for name in list(os.environ):
        if name.startswith("AISCALER_"):
            monkeypatch.delenv(name)


def test_defaults_are_those_of_the_api_contract() -> None:
    settings = Settings()
    assert settings.prometheus_url == "http://localhost:9090"
    assert settings.prometheus_bearer_token_file is None
    assert settings.tick_seconds == 30
    assert settings.namespaces == []
    assert settings.gpu_budget is None
    assert settings.pools == []
    assert settings.balloon_priority_class == "aiscaler-balloon"
    assert settings.model_path is None
    assert (settings.metrics_port, settings.health_port) == (8080, 8081)


def test_environment_variables_set_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AISCALER_PROMETHEUS_URL", "https://prometheus.monitoring:9090/")
    monkeypatch.setenv("AISCALER_TICK_SECONDS", "15")
    monkeypatch.setenv("AISCALER_NAMESPACES", "inference, training")
    monkeypatch.setenv("AISCALER_GPU_BUDGET", "64")
    monkeypatch.setenv(
        "AISCALER_POOLS",
        '[{"name": "l4", "gpuType": "NVIDIA-L4", "gpusPerNode": 1, "maxNodes": 10}]',
    )
    settings = Settings()
    assert settings.prometheus_url == "https://prometheus.monitoring:9090"  # no trailing slash
    assert settings.tick_seconds == 15
    assert settings.namespaces == ["inference", "training"]
    assert settings.gpu_budget == 64
    (pool,) = settings.pools
    assert (pool.name, pool.gpus_per_node, pool.min_nodes, pool.max_nodes) == ("l4", 1, 0, 10)
    assert pool.provisioning_seconds == 300


def test_namespaces_may_also_be_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AISCALER_NAMESPACES", '["a", "b"]')
    assert Settings().namespaces == ["a", "b"]


def write_config(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "aiscaler.yaml"
    path.write_text(text)
    monkeypatch.setenv(CONFIG_FILE_ENV, str(path))


def test_yaml_file_sets_settings_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(
        tmp_path,
        "prometheus_url: http://prometheus:9090\n"
        "tick_seconds: 20\n"
        "gpu_budget: 32\n"
        "pools:\n"
        "  - name: h100\n"
        "    gpuType: NVIDIA-H100-80GB-HBM3\n"
        "    gpusPerNode: 8\n"
        "    maxNodes: 4\n"
        "    budget: 24\n",
        monkeypatch,
    )
    monkeypatch.setenv("AISCALER_TICK_SECONDS", "10")
    settings = Settings()
    assert settings.prometheus_url == "http://prometheus:9090"
    assert settings.gpu_budget == 32
    assert settings.tick_seconds == 10
    assert settings.pools[0].budget == 24


def test_an_empty_yaml_file_means_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, "", monkeypatch)
    from_empty_file = Settings()
    monkeypatch.delenv(CONFIG_FILE_ENV)
    assert from_empty_file == Settings()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", r"aiscaler\.yaml: the file must hold a mapping"),
        ("tick_seconds: [\n", r"aiscaler\.yaml line 2, column 1: expected the node content"),
        ("a: b: c\n", r"aiscaler\.yaml line 1, column 5: mapping values are not allowed here"),
        ("\tx: 1\n", r"aiscaler\.yaml line 1, column 1: found character '\\t'"),
        # settings are snake_case; a typo is not ignored, and the nearest name is suggested
        ("tickSeconds: 10\n", r"aiscaler\.yaml: tickSeconds: unknown key \(did you mean tick_s"),
        ("tick_second: 10\nfoo: 1\n", r"tick_second: unknown key \(did .*; foo: unknown key$"),
        (
            "pools: [{name: a, gpuTyp: x, gpusPerNode: 8, maxNodes: 1}]\n",
            r"pools\.0\.gpuTyp: unknown key \(did you mean gpuType\?\)$",
        ),
        ("tick_seconds: -5\n", r"aiscaler\.yaml: tick_seconds: Input should be greater than 0"),
    ],
)
def test_a_bad_yaml_file_is_one_line_naming_the_file_and_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    write_config(tmp_path, text, monkeypatch)
    with pytest.raises(InputError) as raised:
        load_settings()
    error = str(raised.value)
    assert re.search(message, error), error
    assert "\n" not in error and "pydantic" not in error and "unicode string" not in error


def test_a_value_from_the_environment_is_blamed_on_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(tmp_path, "gpu_budget: -1\n", monkeypatch)
    monkeypatch.setenv("AISCALER_TICK_SECONDS", "soon")
    monkeypatch.setenv("AISCALER_POOLS", "[{")
    with pytest.raises(InputError, match=r"^AISCALER_POOLS: not valid JSON"):
        load_settings()
    monkeypatch.delenv("AISCALER_POOLS")
    with pytest.raises(InputError) as raised:
        load_settings()
    assert str(raised.value) == (
        "AISCALER_TICK_SECONDS: Input should be a valid number, unable to parse string as a "
        f"number (got 'soon'); {CONFIG_FILE_ENV}={tmp_path / 'aiscaler.yaml'}: gpu_budget: "
        "Input should be greater than or equal to 0 (got -1)"
    )


def test_a_missing_yaml_file_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONFIG_FILE_ENV, str(tmp_path / "missing.yaml"))
    with pytest.raises(InputError, match=r"missing\.yaml: cannot read it: No such file"):
        load_settings()


# (overrides, text the error must contain)
INVALID: list[tuple[dict[str, Any], str]] = [
    ({"prometheus_url": "prometheus:9090"}, "prometheus_url"),
    ({"prometheus_url": "ftp://prometheus"}, "prometheus_url"),
    ({"tick_seconds": 0}, "tick_seconds"),
    ({"gpu_budget": -1}, "gpu_budget"),
    ({"metrics_port": 0}, "metrics_port"),
    ({"health_port": 70000}, "health_port"),
    ({"metrics_port": 9000, "health_port": 9000}, "metrics_port and health_port must differ"),
    ({"namespaces": ["a", "a"]}, "namespaces"),
    ({"balloon_priority_class": ""}, "balloon_priority_class"),
    ({"pools": [H100_POOL, H100_POOL]}, "repeated: ['h100']"),
    ({"pools": [H100_POOL | {"minNodes": 5}]}, "minNodes (5) must be less than or equal"),
    ({"pools": [H100_POOL | {"gpusPerNode": 0}]}, "gpusPerNode"),
    ({"pools": [H100_POOL | {"budget": -8}]}, "budget"),
    ({"pools": [{k: v for k, v in H100_POOL.items() if k != "maxNodes"}]}, "maxNodes"),
    ({"pools": [H100_POOL | {"gpu_count": 8}]}, "gpu_count"),
]


@pytest.mark.parametrize(("overrides", "message"), INVALID)
def test_invalid_settings_are_rejected_naming_the_setting(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(pydantic.ValidationError) as raised:
        Settings(**overrides)
    assert message in str(raised.value)


def test_a_pool_at_its_bounds_is_valid() -> None:
    pool = H100_POOL | {"minNodes": 4, "maxNodes": 4, "budget": 0, "provisioningSeconds": 0}
    assert Settings(pools=[pool]).pools[0].min_nodes == 4
