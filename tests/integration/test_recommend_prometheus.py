"""`aiscaler recommend` against a real Prometheus loaded with a real trace (the bundled ServeGen
excerpt as the vLLM request counter of the adoption example's Llama service, scraped every
minute; ten times it in another namespace): the decision now is the planner's on the operator's
own query, the replay is `aiscaler simulate --tune` on the trace `aiscaler export` writes, the
query never leaves its namespace, and bad input ends in one line and exit code 2."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import pytest
import yaml
from harness.components import REPO_ROOT
from harness.traces import BUNDLED_BIN_S as BIN_S
from harness.traces import trace_in_prometheus

from aiscaler.cli import main

DAYS = 2
SCALE = 0.012  # ~13 requests/s, a few replicas of the example's 6.5/s
SERVICE = REPO_ROOT / "examples" / "adoption" / "inferenceservice-recommend-next-to-hpa.yaml"
MODEL = "meta-llama/Llama-3.1-70B-Instruct"
# Small enough for two cores: one seed, four configurations per tuned policy, 10-minute points.
QUICK = ["--seeds", "1", "--tune-budget", "4", "--jobs", "1"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prometheus")
    scales = {"inference": SCALE, "team-b": 10 * SCALE}
    with trace_in_prometheus(folder, DAYS, scales, {"model_name": MODEL}) as world:
        yield world


def history(world, since: str = f"{DAYS}d") -> list[str]:
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(world["end"]))
    return ["--prometheus-url", world["url"], "--since", since, "--end", end, "--step", str(BIN_S)]


def recommend(world, tmp_path: Path, *source: str, since: str = f"{DAYS}d") -> tuple[int, dict]:
    out = tmp_path / "recommend.json"
    code = main(["recommend", *source, *history(world, since), *QUICK, "--json", str(out)])
    return code, json.loads(out.read_text()) if code == 0 else {}


def test_the_decision_now_and_the_replay_match_export_and_simulate(world, tmp_path, capsys):
    code, found = recommend(world, tmp_path, "--service", str(SERVICE), "--current-replicas", "3")
    out, err = capsys.readouterr()
    assert code == 0, err

    # Now: the planner on the vLLM preset's query of inference/llama-3-70b: the demand of the
    # last bin, a forecast, and replicas that serve what it plans for at 6.5/s per replica.
    now = found["now"]
    assert now["demand"] == pytest.approx(world["requests"][-1] * SCALE / BIN_S, rel=1e-6)
    assert now["current_replicas"] == 3 and now["current_replicas_given"]
    spec = yaml.safe_load_all(SERVICE.read_text()).__next__()["spec"]
    assert spec["replicas"]["min"] <= now["replicas"] <= spec["replicas"]["max"]
    planned = re.search(r"forecast demand planned at ([\d.e+]+)/s .* needs (\d+)", now["message"])
    assert planned, now["message"]
    assert int(planned.group(2)) == math.ceil(float(planned.group(1)) / 6.5)
    assert now["forecast"] > 0 and now["lead_time_s"] == 300
    assert now["basis"] == "forecast"  # a fresh start has no replay of the floor to choose it
    assert f"now ({now['time']}, demand {now['demand']:.4g}/s): {now['replicas']} replicas" in out
    assert f"reason {now['reason']}: {now['message']}" in out

    # The replay: the rows of aiscaler, the HPA (tuned) and the 3 replicas held static...
    rows = {(p["policy"], p["variant"]): p for p in found["replay"]["policies"]}
    assert {("aiscaler", "tuned"), ("hpa", "tuned"), ("static", "default")} <= set(rows)
    assert rows[("static", "default")]["params"] == {"replicas": 3}
    for policy, variant in (("aiscaler", "tuned"), ("hpa", "tuned"), ("static", "default")):
        assert re.search(rf"^{policy} +{variant} +\d", out, re.MULTILINE), out
    ratio = found["comparison"]["aiscaler_vs_hpa"]
    assert ratio == pytest.approx(
        rows[("aiscaler", "tuned")]["gpu_hours"] / rows[("hpa", "tuned")]["gpu_hours"]
    )
    assert f"aiscaler (tuned) uses {ratio:.2f}x the GPU-hours of the tuned HPA" in out

    # ... are those of `simulate --tune` on the CSV `export` writes of the same query.
    trace = tmp_path / "llama.csv"
    query = f'sum(rate(vllm:request_success_total{{model_name="{MODEL}"}}[10m]))'
    exported = ["export", "--query", query, "--namespace", "inference", "-o", str(trace)]
    assert main([*exported, *history(world)]) == 0
    simulated = tmp_path / "simulate.json"
    argv = ["simulate", "--trace", str(trace), "--capacity", "6.5", "--cold-start", "300",
            "--gpus-per-replica", "4", "--tune", "--policies", "aiscaler,hpa,static,oracle",
            "--set", "static.replicas=3", *QUICK, "--json", str(simulated)]  # fmt: skip
    assert main(argv) == 0
    expected = json.loads(simulated.read_text())
    for row in expected["policies"]:
        if (row["policy"], row["variant"]) == ("static", "p99"):
            continue  # the same 3 replicas: recommend shows them once
        mine = rows.pop((row["policy"], row["variant"]))
        for name in ("gpu_hours", "slo_attainment", "scale_events", "params"):
            assert mine[name] == pytest.approx(row[name]), (row["policy"], row["variant"], name)
    assert not rows
    assert found["replay"]["windows"] == expected["windows"]


def test_a_query_is_confined_to_its_namespace(world, tmp_path, capsys):
    # The query names team-b (ten times the demand); confined to inference, it reads inference's.
    hostile = 'sum(rate(vllm:request_success_total{namespace="team-b"}[10m]))'
    source = ["--query", hostile, "--namespace", "inference", "--capacity", "6.5"]
    code, found = recommend(world, tmp_path, *source)

    assert code == 0, capsys.readouterr().err
    assert found["now"]["demand"] == pytest.approx(world["requests"][-1] * SCALE / BIN_S, rel=1e-6)
    assert not found["now"]["current_replicas_given"]
    static = [p for p in found["replay"]["policies"] if p["policy"] == "static"]
    assert [p["variant"] for p in static] == ["default", "p99"]  # sized with hindsight


@pytest.mark.parametrize(
    ("source", "since", "says"),
    [
        (
            ["--query", "sum(rate(nothing_here_total[10m]))", "--namespace", "inference"],
            "2d",
            "returned no data in the last 2d",
        ),
        (
            ["--service", str(SERVICE)],
            "12h",
            "holds 11.8 h of data in the last 12h; the replay needs at least 24 h",
        ),
        (
            ["--query", "sum(rate(x[5m]) or", "--namespace", "inference"],
            "2d",
            "in inference: the query is not valid PromQL",
        ),
    ],
)
def test_bad_history_is_one_line_and_exit_2(world, tmp_path, capsys, source, since, says):
    if source[0] == "--query":
        source = [*source, "--capacity", "6.5"]
    code, _ = recommend(world, tmp_path, *source, since=since)

    err = capsys.readouterr().err
    assert code == 2 and says in err and err.count("\n") == 1, err
    assert err.startswith("aiscaler recommend: error: ")
    assert not (tmp_path / "recommend.json").exists()


def test_an_unreachable_prometheus_is_reported(tmp_path, capsys):
    argv = ["recommend", "--service", str(SERVICE), "--prometheus-url", "http://127.0.0.1:9"]
    assert main(argv) == 2
    assert "Prometheus at http://127.0.0.1:9: PrometheusUnreachable" in capsys.readouterr().err
