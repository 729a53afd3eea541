"""A real Prometheus (Debian's package) on loopback, with history backfilled by promtool.

History is written as OpenMetrics text and turned into TSDB blocks with
`promtool tsdb create-blocks-from openmetrics` while the server is stopped; Prometheus loads
them when it starts. Retention is set long (100y) because blocks older than the retention
are dropped silently.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

from .components import find_binary
from .process import ManagedProcess, free_port, run_checked

START_TIMEOUT_S = 60.0
# The type of the `prometheus_factory` fixture: (history=, scrape_targets=, scrape_interval=).
PrometheusFactory = Callable[..., "PrometheusServer"]


@dataclass(frozen=True)
class Series:
    """One time series: metric name, labels, and (unix seconds, value) samples."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    samples: Sequence[tuple[float, float]] = ()


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def openmetrics_text(series: Iterable[Series]) -> str:
    """OpenMetrics exposition of `series` with explicit timestamps, as promtool backfill reads it.

    Each series' samples are written contiguously in time order (promtool rejects
    out-of-order samples within a series).
    """
    lines: list[str] = []
    for one in series:
        labels = ",".join(
            f'{key}="{_escape_label_value(value)}"' for key, value in sorted(one.labels.items())
        )
        selector = f"{one.name}{{{labels}}}" if labels else one.name
        for timestamp, value in sorted(one.samples):
            lines.append(f"{selector} {_format_value(value)} {timestamp:.3f}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


class PrometheusServer:
    """Prometheus with its config and data dir in `workdir`, listening on 127.0.0.1:port.

    `stop()` then `start()` restarts it on the same port with the same data.
    """

    def __init__(
        self,
        workdir: Path,
        scrape_targets: Sequence[str] = (),
        scrape_interval: str = "1s",
        retention: str = "100y",
        scrape_configs: Sequence[Mapping[str, object]] = (),
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config_path = workdir / "prometheus.yml"
        config_path.write_text(
            yaml.safe_dump(_config(scrape_targets, scrape_interval, scrape_configs))
        )
        self._promtool = find_binary("prometheus", "promtool")
        self.process = ManagedProcess(
            "prometheus",
            [
                str(find_binary("prometheus", "prometheus")),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.data_dir}",
                f"--storage.tsdb.retention.time={retention}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            workdir / "prometheus.log",
        )

    def backfill(self, series: Iterable[Series]) -> None:
        """Write `series` into the data dir as TSDB blocks. Only while stopped."""
        if self.process.is_running():
            raise RuntimeError("backfill needs Prometheus stopped: it loads blocks at start")
        text = openmetrics_text(series)
        if text == "# EOF\n":
            return
        source = self.workdir / "history.om.txt"
        source.write_text(text)
        run_checked(
            [
                str(self._promtool),
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                str(source),
                str(self.data_dir),
            ],
            "promtool backfill",
        )

    def start(self) -> None:
        self.process.start()
        self.process.wait_until(self._ready, "ready /-/ready", START_TIMEOUT_S)

    def stop(self) -> None:
        self.process.stop()

    def _ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except requests.RequestException:
            return False


def _config(
    scrape_targets: Sequence[str],
    scrape_interval: str,
    scrape_configs: Sequence[Mapping[str, object]],
) -> dict[str, object]:
    """Scrape `scrape_targets` as job `test`, and any further scrape configs as given."""
    config: dict[str, object] = {"global": {"scrape_interval": scrape_interval}}
    jobs = [dict(job) for job in scrape_configs]
    if scrape_targets:
        jobs.insert(0, {"job_name": "test", "static_configs": [{"targets": list(scrape_targets)}]})
    if jobs:
        config["scrape_configs"] = jobs
    return config
