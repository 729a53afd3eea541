"""The adapter's HTTP path: PrometheusConnect against a loopback server replaying recorded
Prometheus answers (and the failures a real deployment sees: refused, slow, garbage)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from aiscaler.metrics.batch import RangeQuery, Settings
from aiscaler.metrics.errors import BadQuery, BadResponse, MetricError, Timeout, Unreachable
from aiscaler.metrics.prometheus import PrometheusMetrics
from aiscaler.metrics.source import Sample, ServiceQuery

RECORDED = Path(__file__).parent / "recorded"
QUERY = RangeQuery("up", 1_700_000_480.0, 1_700_000_600.0, 60)


class Replay:
    """What the server answers next, and what it was asked."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b""
        self.delay_s = 0.0
        self.requests: list[tuple[str, dict[str, list[str]], str | None]] = []
        self.accept_encodings: list[str | None] = []


@pytest.fixture
def replay() -> Iterator[tuple[Replay, str]]:
    state = Replay()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            state.requests.append(
                (url.path, parse_qs(url.query), self.headers.get("Authorization"))
            )
            state.accept_encodings.append(self.headers.get("Accept-Encoding"))
            time.sleep(state.delay_s)
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def serve_recorded(state: Replay, name: str) -> None:
    record = json.loads((RECORDED / f"{name}.json").read_text())
    state.status, state.body = record["status"], record["body"].encode()


def test_a_recorded_matrix_answer_is_parsed(replay: tuple[Replay, str]) -> None:
    state, url = replay
    serve_recorded(state, "matrix")
    source = PrometheusMetrics(url)
    try:
        answer = source.query_range(QUERY)
    finally:
        source.close()
    assert not isinstance(answer, MetricError)
    assert {s.labels["namespace"] for s in answer} == {"team-a", "team-b"}
    path, params, _ = state.requests[0]
    assert path == "/api/v1/query_range"
    assert params["query"] == ["up"] and params["step"] == ["60"]
    assert params["start"] == ["1700000480"] and params["end"] == ["1700000600"]
    assert params["timeout"] == ["10.0"]
    # uncompressed: gzipping a large answer costs Prometheus more than evaluating the query
    assert state.accept_encodings == ["identity"]


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("error_bad_data", BadQuery),
        ("error_execution", BadQuery),
        ("error_timeout", Timeout),
    ],
)
def test_recorded_error_answers_become_typed_errors(
    replay: tuple[Replay, str], name: str, error: type[MetricError]
) -> None:
    state, url = replay
    serve_recorded(state, name)
    source = PrometheusMetrics(url)
    try:
        assert isinstance(source.query_range(QUERY), error)
    finally:
        source.close()


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (200, b"<html>not prometheus</html>", BadResponse),
        (200, b'{"status":"success"}', BadResponse),
        (
            200,
            b'{"status":"success","data":{"result":[{"metric":{},"values":[[1,"x"]]}]}}',
            BadResponse,
        ),
        (502, b"<html>Bad Gateway</html>", Unreachable),
    ],
)
def test_garbage_answers_become_typed_errors(
    replay: tuple[Replay, str], status: int, body: bytes, error: type[MetricError]
) -> None:
    state, url = replay
    state.status, state.body = status, body
    source = PrometheusMetrics(url)
    try:
        answer = source.query_range(QUERY)
    finally:
        source.close()
    assert isinstance(answer, error)
    # kept as a value: without the traceback that would hold the tick's frames (core.errors)
    assert answer.__traceback__ is None


def test_a_slow_prometheus_is_a_timeout(replay: tuple[Replay, str]) -> None:
    state, url = replay
    serve_recorded(state, "matrix")
    state.delay_s = 1.0
    source = PrometheusMetrics(url, timeout_s=0.2)
    try:
        assert isinstance(source.query_range(QUERY), Timeout)
    finally:
        source.close()
    assert len(state.requests) == 1  # no read retry: one timeout per query, not several


def test_nothing_listening_is_unreachable() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    source = PrometheusMetrics(f"http://127.0.0.1:{port}", timeout_s=1)
    try:
        assert isinstance(source.query_range(QUERY), Unreachable)
    finally:
        source.close()


def test_measure_sends_the_bearer_token_read_from_its_file_each_tick(
    replay: tuple[Replay, str], tmp_path: Path
) -> None:
    state, url = replay
    now = 1_700_000_600.0
    state.body = json.dumps(
        {
            "status": "success",
            "data": {
                "resultType": "matrix",
                "result": [{"metric": {"namespace": "team-a"}, "values": [[now, "4"]]}],
            },
        }
    ).encode()
    token = tmp_path / "token"
    token.write_text("first\n")
    source = PrometheusMetrics(url, bearer_token_file=token, settings=Settings(history_points=3))
    service = ServiceQuery("team-a", "llm")
    try:
        first = source.measure([service], [], now)
        token.write_text("second")
        source.measure([service], [], now)
    finally:
        source.close()
    assert first.services[service.key].demand == Sample(4.0, now)
    tokens = [auth for _, _, auth in state.requests]
    assert len(tokens) == 12  # demand history, demand, served, queue, latency, gpu; twice
    assert tokens.count("Bearer first") == 6 and tokens.count("Bearer second") == 6
    assert state.accept_encodings == ["identity"] * 12  # the token adds to the headers
