"""Record real Prometheus HTTP API answers for the parsing tests.

Run from the repository root (needs Debian's prometheus; uses the integration harness):
    .venv/bin/python tests/unit/metrics/recorded/record.py
It starts a Prometheus with a little backfilled history, sends each request below and writes
the HTTP status and the exact body to <name>.json here. The answers are fixed by the history
and the query times, so re-recording gives the same files except for the Prometheus version.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[2] / "integration"))

from harness.prometheus import PrometheusServer, Series  # noqa: E402

T0 = 1_700_000_000.0  # history: 10 minutes of samples every 15 s from here
HISTORY = [
    Series(
        "demo_requests_total",
        {"namespace": "team-a", "model_name": "m1"},
        [(T0 + 15 * i, 10.0 * i) for i in range(41)],
    ),
    Series(
        "demo_requests_total",
        {"namespace": "team-b", "model_name": "m1"},
        [(T0 + 15 * i, 5.0 * i) for i in range(41)],
    ),
]
AT = T0 + 600
REQUESTS: dict[str, tuple[str, dict[str, Any]]] = {
    "vector": ("query", {"query": "demo_requests_total", "time": AT}),
    "matrix": (
        "query_range",
        {
            "query": "sum by (namespace) (rate(demo_requests_total[1m]))",
            "start": AT - 120,
            "end": AT,
            "step": 60,
        },
    ),
    "scalar": ("query", {"query": "scalar(vector(1.5))", "time": AT}),
    "string": ("query", {"query": '"hello"', "time": AT}),
    "empty": ("query", {"query": "no_such_metric", "time": AT}),
    "nan": ("query", {"query": "vector(0) / 0", "time": AT}),
    "plus_inf": ("query", {"query": "vector(1) / 0", "time": AT}),
    "minus_inf": ("query", {"query": "vector(-1) / 0", "time": AT}),
    "matrix_nan": (
        "query_range",
        {
            "query": "sum(rate(demo_requests_total[1m])) * 0 / 0",
            "start": AT - 60,
            "end": AT,
            "step": 60,
        },
    ),
    "error_bad_data": ("query", {"query": "demo_requests_total{", "time": AT}),
    "error_execution": ("query", {"query": "demo_requests_total + on() vector(1)", "time": AT}),
    "error_timeout": (
        "query_range",
        {
            "query": "count_over_time(vector(1)[10m:100ms])",
            "start": AT - 86400,
            "end": AT,
            "step": 10,
            "timeout": "1ms",
        },
    ),
}


def main() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        server = PrometheusServer(Path(workdir))
        server.backfill(HISTORY)
        server.start()
        try:
            version = requests.get(f"{server.url}/api/v1/status/buildinfo", timeout=5).json()
            for name, (endpoint, params) in REQUESTS.items():
                answer = requests.get(f"{server.url}/api/v1/{endpoint}", params=params, timeout=30)
                record = {
                    "prometheus": version["data"]["version"],
                    "endpoint": endpoint,
                    "params": params,
                    "status": answer.status_code,
                    "body": answer.text,
                }
                (HERE / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
                print(name, answer.status_code, answer.text[:100])
        finally:
            server.stop()


if __name__ == "__main__":
    main()
