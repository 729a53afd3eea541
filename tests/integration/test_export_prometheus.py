"""`aiscaler export` against a real Prometheus loaded with a real trace (the bundled ServeGen
excerpt, as the request counter vLLM exports, scraped every minute): the CSV it writes is the
trace again, `simulate`, `backtest` and `train` read it, a namespace confines the query as the
operator confines a custom resource's, and bad input ends in one line and exit code 2."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import numpy as np
import pytest
from harness.traces import BUNDLED_BIN_S as BIN_S
from harness.traces import bundled_requests, request_counter

from aiscaler.cli import main

DAYS = 2
QUERY = 'sum(rate(vllm:request_success_total{model_name="qwen"}[10m]))'


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A real Prometheus with the trace in namespace `team-a` and ten times it in `team-b`."""
    from harness.components import component_or_skip
    from harness.prometheus import PrometheusServer

    requests = bundled_requests(DAYS)
    end = math.floor(time.time() / BIN_S) * BIN_S - 3600
    with component_or_skip():
        server = PrometheusServer(tmp_path_factory.mktemp("prometheus"))
    server.backfill(
        [
            request_counter({"namespace": "team-a", "model_name": "qwen"}, requests, end),
            request_counter({"namespace": "team-b", "model_name": "qwen"}, requests, end, 10.0),
        ]
    )
    server.start()
    yield {"url": server.url, "requests": requests, "end": end}
    server.stop()


def export(world, tmp_path: Path, *extra: str, query: str = QUERY) -> tuple[int, Path]:
    out = tmp_path / "trace.csv"
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(world["end"]))
    source = ["--prometheus-url", world["url"], "--query", query, "--since", f"{DAYS}d"]
    code = main(["export", *source, "--end", end, "--step", str(BIN_S), "-o", str(out), *extra])
    return code, out


def read(path: Path) -> tuple[list[float], list[float]]:
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return [float(r["timestamp_s"]) for r in rows], [float(r["requests"]) for r in rows]


def test_export_writes_the_trace_back_and_the_commands_read_it(world, tmp_path, capsys):
    code, out = export(world, tmp_path, "--namespace", "team-a")

    assert code == 0, capsys.readouterr().err
    times, counts = read(out)
    expected = world["requests"]  # each bin's count, from the rate at its end
    assert counts == pytest.approx(expected, rel=1e-6)
    assert times[0] == world["end"] - len(expected) * BIN_S
    assert np.all(np.diff(times) == BIN_S)
    assert f"wrote {out}" in capsys.readouterr().out

    # The commands that read traces take it as it is.
    assert main(["simulate", "--trace", str(out), "--policies", "static,oracle"]) == 0
    assert main(["backtest", "--trace", str(out), "--horizons", "1"]) == 0
    checkpoint = tmp_path / "checkpoint"
    assert main(["train", "--trace", str(out), "--steps", "2", "--out", str(checkpoint)]) == 0
    assert (checkpoint / "config.json").is_file()


def test_a_namespace_confines_the_query_as_the_operator_does(world, tmp_path):
    # The query names the other namespace: confined to team-a, it reads team-a's series only.
    hostile = 'sum(rate(vllm:request_success_total{namespace="team-b"}[10m]))'
    code, out = export(world, tmp_path, "--namespace", "team-a", query=hostile)
    assert code == 0
    assert read(out)[1] == pytest.approx(world["requests"], rel=1e-6)
    # Without --namespace it is the user's own Prometheus query: team-b's ten times the trace.
    code, out = export(world, tmp_path, query=hostile)
    assert code == 0
    assert read(out)[1] == pytest.approx([10 * r for r in world["requests"]], rel=1e-6)


@pytest.mark.parametrize(
    ("extra", "query", "says"),
    [
        ((), "sum(rate(nothing_here_total[10m]))", "returned no data in the last 2d"),
        (
            (),
            "sum by (namespace) (rate(vllm:request_success_total[10m]))",
            "returned 2 series (namespace=team-a; namespace=team-b) where one demand series",
        ),
        (("--namespace", "team-a"), "sum(rate(x[5m]) or", "--query: the query is not valid PromQL"),
        (("--since", "7 days"), QUERY, "'7 days' is not a duration such as 7d"),
        (("--namespace", "Team_A"), QUERY, "'Team_A' is not a valid namespace name"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_with_nothing_written(
    world, tmp_path, capsys, extra, query, says
):
    code, out = export(world, tmp_path, *extra, query=query)

    err = capsys.readouterr().err
    assert code == 2 and says in err and err.count("\n") == 1, err
    assert err.startswith("aiscaler export: error: ")
    assert not out.exists()


def test_an_unreachable_prometheus_and_a_bad_output_are_reported(world, tmp_path, capsys):
    code = main(
        [
            "export",
            "--prometheus-url",
            "http://127.0.0.1:9",
            "--query",
            QUERY,
            "-o",
            str(tmp_path / "t.csv"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Prometheus at http://127.0.0.1:9: PrometheusUnreachable" in err
    # The output is checked before Prometheus is asked.
    code = main(
        [
            "export",
            "--prometheus-url",
            world["url"],
            "--query",
            QUERY,
            "-o",
            str(tmp_path / "no" / "t.csv"),
        ]
    )
    assert code == 2 and "the folder" in capsys.readouterr().err
