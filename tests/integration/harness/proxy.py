"""A fault-injecting HTTP proxy on 127.0.0.1 in front of a real server (kube-apiserver,
Prometheus), for the fault tests.

Clients talk plain HTTP to the proxy; it forwards each request to the upstream (HTTPS with the
test CA for the API server), unless a `Fault` matching the request says otherwise: answer with
an HTTP status (409, 429, 500, 503, ...) and a body, wait before answering (beyond a client's
timeout) and then forward or not, or cut a watch stream after a while. Every request is recorded
(`seen`), so a test can count what reached the server. Nothing leaves the loopback interface.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests
import urllib3.exceptions

from .process import free_port

# Headers that belong to one hop, not to the request or answer itself.
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "proxy-authorization",
    "host",
    "accept-encoding",
    "content-length",
}


@dataclass
class Fault:
    """What to do with requests whose method and path+query match. `times`: how many requests
    it applies to (None: until cleared)."""

    method: str  # "" matches any method
    path: re.Pattern[str]  # searched in the path and query, e.g. r"/scale$" or r"watch=true"
    status: int = 0  # answer with this status instead of forwarding (0: forward)
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # wait this long first
    forward_after_delay: bool = False  # a slow server: the request still reaches it
    cut_after_s: float | None = None  # a stream (watch) is cut after this many seconds
    times: int | None = None
    used: int = 0

    def matches(self, method: str, target: str) -> bool:
        left = self.times is None or self.used < self.times
        return left and self.method in ("", method) and bool(self.path.search(target))


@dataclass
class Seen:
    """A request, recorded when it arrives; `status` and `forwarded` are set when it is done."""

    method: str
    target: str  # path and query
    headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None  # what the client got (0: the connection was dropped)
    forwarded: bool = False  # whether the request reached the upstream


class FaultProxy:
    """`FaultProxy(upstream, verify=ca_path)`; `.url`; `.inject(...)`; `.clear()`; `.stop()`."""

    def __init__(self, upstream: str, verify: str | bool = True) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.seen: list[Seen] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._verify = verify  # per request: requests lets the environment override a session's
        self._session = requests.Session()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def inject(self, method: str, path: str, **what: Any) -> Fault:
        """Add a fault for requests of `method` ("" for any) whose path+query matches `path`."""
        fault = Fault(method, re.compile(path), **what)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def count(self, method: str, path: str, forwarded: bool | None = None) -> int:
        pattern = re.compile(path)
        with self._lock:
            return sum(
                1
                for s in self.seen
                if s.method == method
                and pattern.search(s.target)
                and (forwarded is None or s.forwarded == forwarded)
            )

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._session.close()

    def _fault_for(self, method: str, target: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, target):
                    fault.used += 1
                    return fault
        return None

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def do_GET(self) -> None:
            self._handle()

        do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

        def _handle(self) -> None:
            try:
                self._relay()
            except OSError:  # the client went away (e.g. it timed out during a delay)
                self.close_connection = True

        def _relay(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen = Seen(self.command, self.path, dict(self.headers.items()))
            proxy._record(seen)
            fault = proxy._fault_for(self.command, self.path)
            if fault is not None and fault.delay_s:
                time.sleep(fault.delay_s)
            if fault is not None and fault.status:
                seen.status = fault.status
                self._answer(fault.status, fault.body, fault.headers)
                return
            if fault is not None and fault.delay_s and not fault.forward_after_delay:
                seen.status = 0
                self._drop()
                return
            seen.forwarded = True
            seen.status = self._forward(body, fault.cut_after_s if fault else None)

        def _forward(self, body: bytes, cut_after_s: float | None) -> int:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers["Accept-Encoding"] = "identity"  # bytes are relayed as they come
            try:
                upstream = proxy._session.request(
                    self.command,
                    proxy.upstream + self.path,
                    data=body or None,
                    headers=headers,
                    stream=True,
                    timeout=(5, 300),
                    verify=proxy._verify,
                )
            except requests.RequestException as error:
                self._answer(502, f"proxy: upstream unreachable: {error}".encode(), {})
                return 502
            with upstream:
                self.send_response(upstream.status_code)
                for key, value in upstream.headers.items():
                    if key.lower() not in _HOP_BY_HOP | {"content-encoding"}:
                        self.send_header(key, value)
                if upstream.headers.get("Transfer-Encoding", "").lower() != "chunked":
                    data = upstream.raw.read(decode_content=False)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return upstream.status_code
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self._stream(upstream, cut_after_s)
            return upstream.status_code

        def _stream(self, upstream: requests.Response, cut_after_s: float | None) -> None:
            """Relay a chunked answer (a watch) as it comes; cut it after `cut_after_s`."""
            timer = None
            if cut_after_s is not None:
                timer = threading.Timer(cut_after_s, self._cut, (upstream,))
                timer.start()
            try:
                for chunk in upstream.raw.read_chunked(decode_content=False):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except (OSError, ValueError, urllib3.exceptions.HTTPError, AttributeError):
                self.close_connection = True  # cut, or the upstream closed it
            finally:
                if timer is not None:
                    timer.cancel()

        def _cut(self, upstream: requests.Response) -> None:
            self._drop()
            upstream.close()

        def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _drop(self) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    return Handler
