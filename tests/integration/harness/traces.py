"""A real trace as the metrics an engine exports: the bundled ServeGen excerpt's requests per
bin as vLLM's request counter, scraped every minute (for Prometheus backfills)."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from importlib import resources

from .prometheus import Series

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
