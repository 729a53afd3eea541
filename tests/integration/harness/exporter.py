"""A tiny metrics endpoint on loopback for Prometheus to scrape live series from."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, start_http_server

from .process import free_port


class TestExporter:
    """Serves `registry` on 127.0.0.1; register Gauges/Counters on it, then scrape `target`."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        port = free_port()
        self._server, self._thread = start_http_server(
            port, addr="127.0.0.1", registry=self.registry
        )
        self.target = f"127.0.0.1:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
