"""Operator-wide settings: environment variables AISCALER_<NAME>, or a YAML file named by
AISCALER_CONFIG_FILE (the Helm chart renders its values into one). Environment variables win
over the file, the file over the defaults.

    AISCALER_PROMETHEUS_URL=http://prometheus:9090 AISCALER_NAMESPACES=inference,training

Lists and pools in the environment are JSON (`AISCALER_POOLS='[{"name": "h100", ...}]'`),
except namespaces, which may also be comma-separated.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from aiscaler.api.base import ApiModel
from aiscaler.inputs import InputError, pydantic_problems, read_yaml
from aiscaler.metrics.batch import Settings as Measurement

CONFIG_FILE_ENV = "AISCALER_CONFIG_FILE"


def read_config_file(config_file: str) -> dict[str, Any]:
    """The settings in a YAML file: a mapping of setting names (snake_case) to values."""
    data = read_yaml(Path(config_file), f"{CONFIG_FILE_ENV}=")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(
            f"{CONFIG_FILE_ENV}={config_file}: the file must hold a mapping of setting names "
            f"to values, not a {type(data).__name__}"
        )
    return data


def load_settings() -> Settings:
    """The settings from the environment and the file; an InputError names the environment
    variable or the file of each problem, on one line."""
    try:
        return Settings()
    except SettingsError as error:  # a list or pool in the environment that is not JSON
        field = re.search(r'field "(\w+)"', str(error))
        variable = "AISCALER_" + field.group(1).upper() if field else "an AISCALER_ variable"
        raise InputError(f"{variable}: not valid JSON ({error})") from None
    except ValidationError as error:
        config_file = os.environ.get(CONFIG_FILE_ENV)
        by_source: dict[str, list[str]] = {}
        errors = error.errors()
        for detail, problem in zip(errors, pydantic_problems(errors, _known_names), strict=True):
            variable = "AISCALER_" + str(detail["loc"][0]).upper() if detail["loc"] else ""
            if variable in os.environ:  # the variable names the setting
                by_source.setdefault(variable, []).append(problem.partition(": ")[2])
            else:
                source = f"{CONFIG_FILE_ENV}={config_file}" if config_file else "settings"
                by_source.setdefault(source, []).append(problem)
        raise InputError(
            "; ".join(f"{source}: {'; '.join(problems)}" for source, problems in by_source.items())
        ) from None


def _known_names(parent: tuple[Any, ...]) -> list[str]:
    """Setting names valid under `parent` (a pool's keys are camelCase, like the CRs')."""
    if parent[:1] == ("pools",):
        return [field.alias or name for name, field in GpuPool.model_fields.items()]
    return list(Settings.model_fields)


class GpuPool(ApiModel):
    """A group of identical GPU nodes the cluster autoscaler (or Karpenter) can grow."""

    name: str = Field(min_length=1, description="Pool name, referred to by resources.pool.")
    gpu_type: str = Field(min_length=1, description="GPU model of the nodes, e.g. NVIDIA-L4.")
    gpus_per_node: int = Field(ge=1, description="GPUs on one node.")
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels that select the pool's nodes."
    )
    min_nodes: int = Field(default=0, ge=0, description="Fewest nodes the pool keeps.")
    max_nodes: int = Field(ge=0, description="Most nodes the pool can grow to.")
    provisioning_seconds: float = Field(
        default=300, ge=0, description="Seconds from requesting a node to it accepting pods."
    )
    budget: int | None = Field(
        default=None, ge=0, description="Most GPUs of this pool aiscaler uses."
    )

    @model_validator(mode="after")
    def _min_nodes_at_most_max_nodes(self) -> Self:
        if self.min_nodes > self.max_nodes:
            raise ValueError(
                f"pool {self.name!r}: minNodes ({self.min_nodes}) must be less than or equal "
                f"to maxNodes ({self.max_nodes})"
            )
        return self


class Settings(BaseSettings):
    """Settings of the whole operator."""

    model_config = SettingsConfigDict(env_prefix="AISCALER_", extra="forbid")
    # False: only the values given are read (aiscaler validate checks a file on its own).
    read_environment: ClassVar[bool] = True

    prometheus_url: str = Field(
        default="http://localhost:9090", description="Base URL of the Prometheus HTTP API."
    )
    prometheus_bearer_token_file: Path | None = Field(
        default=None, description="File holding a bearer token sent to Prometheus."
    )
    tick_seconds: float = Field(default=30, gt=0, description="Seconds between two planning ticks.")
    namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Namespaces to watch; empty means all."
    )
    gpu_budget: int | None = Field(
        default=None,
        ge=0,
        description="Most GPUs aiscaler uses in the whole cluster; none: no limit.",
    )
    pools: list[GpuPool] = Field(default_factory=list, description="GPU node pools.")
    balloon_priority_class: str = Field(
        default="aiscaler-balloon",
        min_length=1,
        description="PriorityClass of the balloon pods that hold node headroom.",
    )
    model_path: Path | None = Field(
        default=None, description="Forecast model checkpoint folder; none: the shipped checkpoint."
    )
    measurement: Measurement = Field(
        default_factory=Measurement,
        description="How demand and latency are read from Prometheus: the forecaster's step "
        "(history_step_s) and context (history_points), the rate window (window_s), how far "
        "back the newest point is looked for (probe_s, probe_step_s) and when it is stale "
        "(stale_after_s). The defaults suit real time; a cluster whose time is compressed (the "
        "local cluster) scales them.",
    )
    metrics_port: int = Field(default=8080, ge=1, le=65535, description="Port of /metrics.")
    health_port: int = Field(default=8081, ge=1, le=65535, description="Port of the health probes.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        if not cls.read_environment:
            return (init_settings,)
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if not config_file:
            return init_settings, env_settings
        file_settings = InitSettingsSource(settings_cls, init_kwargs=read_config_file(config_file))
        return init_settings, env_settings, file_settings

    @field_validator("prometheus_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"prometheus_url must be an http(s) URL with a host, not {url!r}")
        return url.rstrip("/")

    @field_validator("namespaces", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("namespaces")
    @classmethod
    def _distinct_namespaces(cls, namespaces: list[str]) -> list[str]:
        if len(set(namespaces)) != len(namespaces) or "" in namespaces:
            raise ValueError(f"namespaces must be distinct and not empty, not {namespaces}")
        return namespaces

    @field_validator("pools")
    @classmethod
    def _distinct_pool_names(cls, pools: list[GpuPool]) -> list[GpuPool]:
        names = [pool.name for pool in pools]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"pool names must be distinct; repeated: {repeated}")
        return pools

    @field_validator("measurement")
    @classmethod
    def _positive_measurement(cls, measurement: Measurement) -> Measurement:
        values = vars(measurement)
        if any(not value > 0 for value in values.values()):
            raise ValueError(f"measurement: every value must be positive, not {values}")
        if measurement.probe_step_s > measurement.probe_s:
            raise ValueError("measurement: probe_step_s must not exceed probe_s")
        return measurement

    @model_validator(mode="after")
    def _distinct_ports(self) -> Self:
        if self.metrics_port == self.health_port:
            raise ValueError(
                f"metrics_port and health_port must differ (both are {self.metrics_port})"
            )
        return self


class _FileOnly(Settings):
    """Settings from given values alone: the environment and AISCALER_CONFIG_FILE are not read."""

    read_environment = False


def settings_file_problems(data: Any) -> tuple[Settings | None, list[str]]:
    """The content of a settings file checked on its own, as `aiscaler validate` does: the
    settings, or None and one `setting: problem` line per problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [
            f"the file must hold a mapping of setting names to values, not a {type(data).__name__}"
        ]
    named = [key for key in data if not isinstance(key, str)]
    if named:
        return None, [f"{key!r}: setting names are text, e.g. tick_seconds" for key in named]
    try:
        return _FileOnly(**data), []
    except ValidationError as error:
        return None, pydantic_problems(error.errors(), _known_names)
