"""A real trace as the metrics an engine exports: the bundled ServeGen excerpt's requests per
bin as vLLM's request counter, scraped every minute (for Prometheus backfills)."""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from .components import component_or_skip
from .prometheus import PrometheusServer, Series

BUNDLED_BIN_S = 600
SCRAPE_S = 60


def bundled_requests(days: float) -> list[float]:
    """The first `days` of the bundled trace: requests per 10-minute bin."""
    path = resources.files("aiscaler") / "data" / "servegen_language_m_mid_5days_10min.csv"
    with resources.as_file(path) as file, file.open() as f:
        rows = list(csv.DictReader(f))
    return [float(r["requests"]) for r in rows[: round(days * 86400 / BUNDLED_BIN_S)]]


def request_counter(
    labels: Mapping[str, str], requests: list[float], end: float, scale: float = 1.0
) -> Series:
    """`vllm:request_success_total{labels}`: each bin's requests (times `scale`) arriving
    evenly, scraped every minute; the last bin ends at `end`."""
    start = end - len(requests) * BUNDLED_BIN_S
    samples, total = [(start, 0.0)], 0.0
    per_scrape = BUNDLED_BIN_S // SCRAPE_S
    for i, count in enumerate(requests):
        for j in range(1, per_scrape + 1):
            total += scale * count / per_scrape
            samples.append((start + i * BUNDLED_BIN_S + j * SCRAPE_S, total))
    return Series("vllm:request_success_total", {**labels, "finished_reason": "stop"}, samples)


@contextmanager
def trace_in_prometheus(
    folder: Path, days: float, scales: Mapping[str, float], labels: Mapping[str, str]
) -> Iterator[dict[str, Any]]:
    """A real Prometheus holding the first `days` of the bundled trace as the request counter
    (with `labels`) of each namespace in `scales`, times its scale; the last bin ends on a bin an
    hour ago. Yields its `url`, the trace's `requests` per bin and that `end`."""
    requests = bundled_requests(days)
    end = math.floor(time.time() / BUNDLED_BIN_S) * BUNDLED_BIN_S - 3600
    with component_or_skip():
        server = PrometheusServer(folder)
    server.backfill(
        [
            request_counter({"namespace": namespace, **labels}, requests, end, scale)
            for namespace, scale in scales.items()
        ]
    )
    server.start()
    try:
        yield {"url": server.url, "requests": requests, "end": end}
    finally:
        server.stop()
