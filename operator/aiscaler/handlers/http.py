"""Probes (/healthz, /readyz) and the operator's own /metrics, served by aiohttp (kopf's own
HTTP library) in the operator's event loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from aiscaler.handlers.telemetry import Telemetry


@dataclass
class Health:
    """The planning loop's state, for the probes and the handlers. The loop stamps `last_loop`
    on every iteration, leader or not. One object, referenced from every memo: kopf gives each
    custom resource a shallow copy of the operator's memo, so plain memo fields would not
    follow the loop."""

    tick_s: float
    ready: bool = False  # clients built and the loop started
    last_loop: float | None = None  # monotonic time of the latest loop iteration
    leading: bool = False  # this replica holds the leader Lease

    def live(self, now: float) -> tuple[bool, str]:
        """Alive until the loop has missed three ticks in a row (stuck, not merely slow)."""
        if self.last_loop is None:
            return True, "starting"
        late = now - self.last_loop
        if late > 3 * self.tick_s:
            return False, f"planning loop stuck: last iteration {late:.0f}s ago"
        return True, "ok"


def build_apps(
    health: Health, telemetry: Telemetry, clock: Callable[[], float]
) -> tuple[web.Application, web.Application]:
    """(metrics app, health app); `clock` gives monotonic seconds."""

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(telemetry.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        ok, why = health.live(clock())
        return web.Response(status=200 if ok else 500, text=why)

    async def readyz(_: web.Request) -> web.Response:
        return web.Response(
            status=200 if health.ready else 503, text="ready" if health.ready else "starting"
        )

    metrics_app = web.Application()
    metrics_app.router.add_get("/metrics", metrics)
    health_app = web.Application()
    health_app.router.add_get("/healthz", healthz)
    health_app.router.add_get("/readyz", readyz)
    return metrics_app, health_app


async def start_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
