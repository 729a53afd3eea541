"""The Prometheus metrics source: one batched round of range queries per tick.

Built once at start-up and reused: one `PrometheusConnect` (one HTTP session, so connections
are kept alive), one thread pool that bounds how many queries run at the same time, and the
demand history of every service (`HistoryCache`), so that a tick reads only what is new.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from aiscaler.core.errors import detached
from aiscaler.metrics.batch import Answer, RangeQuery, Settings, assemble, plan
from aiscaler.metrics.errors import BadResponse, MetricError, Timeout, Unreachable
from aiscaler.metrics.history import HistoryCache
from aiscaler.metrics.readings import error_from_http, parse_result
from aiscaler.metrics.source import JobQuery, Measurements, ServiceQuery

# PrometheusConnect reports a non-200 answer only as this text.
_HTTP_ERROR = re.compile(r"^HTTP Status Code (\d+) \((.*)\)$", re.DOTALL)
# Ask for answers uncompressed. Prometheus gzips a large answer much more slowly than it evaluates
# the query: the demand history of 1,000 services (~10 MB of JSON) took 1.9 s gzipped and 0.8 s
# plain on 2 shared cores (bench/RESULTS.md). The operator runs next to Prometheus in the
# cluster, where ~10 MB per tick is cheap to move.
_HEADERS = {"Accept-Encoding": "identity"}


class PrometheusMetrics:
    """`MetricsSource` over the Prometheus HTTP API."""

    def __init__(
        self,
        url: str,
        *,
        bearer_token_file: Path | None = None,
        timeout_s: float = 10.0,
        max_concurrency: int = 8,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self._timeout_s = timeout_s
        self._token_file = bearer_token_file
        # One connection retry (a restarted Prometheus), no read retry (read=False re-raises
        # the read timeout itself, so it is told apart from a refused connection): a slow
        # Prometheus must cost one timeout per tick, not several.
        retry = Retry(total=1, connect=1, read=False, status=0, backoff_factor=0)
        self._client = PrometheusConnect(
            url=url, retry=retry, timeout=timeout_s, headers=dict(_HEADERS)
        )
        self._pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="prometheus")
        self.history = HistoryCache(
            self.settings.history_step_s, self.settings.history_points, self.settings.reread_s
        )

    def measure(
        self, services: Sequence[ServiceQuery], jobs: Sequence[JobQuery], now: float
    ) -> Measurements:
        batches = plan(services, jobs, now, self.settings, self.history)
        try:
            token = self._token()
        except OSError as error:  # every reading says why, as for an unreachable Prometheus
            failed = Unreachable(f"cannot read the bearer token file: {error.strerror or error}")
            answers: list[Answer] = [failed] * len(batches)
            return assemble(batches, answers, services, jobs, now, self.settings, self.history)
        answers = list(
            self._pool.map(
                lambda batch: (
                    batch.query
                    if isinstance(batch.query, MetricError)
                    else without_secret(self.query_range(batch.query), token)
                ),
                batches,
            )
        )
        return assemble(batches, answers, services, jobs, now, self.settings, self.history)

    def _token(self) -> str:
        """The bearer token ("" without one), re-read every tick (projected service-account
        tokens are rotated on disk) and set on the client."""
        if self._token_file is None:
            return ""
        token = self._token_file.read_text().strip()
        self._client.headers = {**_HEADERS, "Authorization": f"Bearer {token}"}
        return token

    def query_range(self, query: RangeQuery) -> Answer:
        try:
            result = self._client.custom_query_range(
                query.promql,
                start_time=datetime.fromtimestamp(query.start, UTC),
                end_time=datetime.fromtimestamp(query.end, UTC),
                step=str(query.step_s),
                # Plain seconds: Prometheus durations take no decimals ("10.0s" is rejected).
                params={"timeout": str(self._timeout_s)},
            )
        except Exception as exc:  # the client raises requests' and its own exceptions
            return error_from_exception(exc)
        try:
            return parse_result(result)
        except MetricError as error:
            return detached(error)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()


def without_secret(answer: Answer, secret: str) -> Answer:
    """`answer`, with `secret` (the bearer token) cut out of an error's message: what a server or
    an authenticating proxy answers goes into conditions, events and logs, and some repeat the
    request's credentials."""
    if secret and isinstance(answer, MetricError) and secret in str(answer):
        return type(answer)(str(answer).replace(secret, "<redacted>"))
    return answer


def error_from_exception(exc: Exception) -> MetricError:
    """The typed error for what PrometheusConnect raised."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return Unreachable(f"cannot connect to Prometheus: {exc}")
    if isinstance(exc, requests.exceptions.Timeout):
        return Timeout(f"Prometheus did not answer in time: {exc}")
    if isinstance(exc, requests.exceptions.RequestException):
        # ConnectionError and friends; a 200 answer whose body is not JSON also lands here
        # (requests' JSONDecodeError is a RequestException).
        if isinstance(exc, ValueError):
            return BadResponse(f"Prometheus answered with a body that is not JSON: {exc}")
        return Unreachable(f"cannot reach Prometheus: {exc}")
    if isinstance(exc, PrometheusApiClientException):
        match = _HTTP_ERROR.match(str(exc))
        if match:
            try:
                body = ast.literal_eval(match.group(2))
            except (ValueError, SyntaxError):
                body = b""
            return error_from_http(int(match.group(1)), body if isinstance(body, bytes) else b"")
        return Unreachable(f"Prometheus client error: {exc}")
    if isinstance(exc, ValueError | KeyError | TypeError):
        return BadResponse(f"Prometheus answer is not its API: {exc!r}")
    raise exc
