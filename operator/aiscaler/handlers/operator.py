"""The thin kopf layer: start-up and clean-up, indices of both kinds, spec validation on each
new generation seen in a watch event, and the cluster-wide planning loop.

Only the holder of the leader Lease writes anything (two replicas are safe): the loop tries the
Lease every tick, and the validation handlers of a replica that does not lead do nothing (the
leader's next tick validates every object anyway, so nothing is lost).

Every handler is stateless (indices and event handlers): kopf stores nothing on the objects, so
it sends no request of its own. Its create/update/resume handlers would patch each object once
more (kopf's annotations): a request per object at start-up, a burst that the API server's
fairness limits answer with 429s at a thousand objects (bench/churn_bench.py).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf

from aiscaler.api.base import GROUP, VERSION
from aiscaler.handlers.http import Health, build_apps, start_site
from aiscaler.handlers.mapping import key_of, parse_service, parse_training
from aiscaler.handlers.status import SpecReason
from aiscaler.handlers.telemetry import Telemetry
from aiscaler.handlers.tick import Operator, TickReport, mark_invalid, run_tick
from aiscaler.kube.client import KubeApi, load_api_client
from aiscaler.kube.lease import try_lead
from aiscaler.settings import Settings

log = logging.getLogger("aiscaler")

LEASE_NAME = "aiscaler-leader"


@dataclass(frozen=True)
class RunOptions:
    kubeconfig: str | None
    identity: str  # this replica's name in the Lease (the pod name in a cluster)
    namespace: str  # the operator's own namespace (Lease, balloons)


def build_operator(settings: Settings, options: RunOptions) -> tuple[Operator, str]:
    """Clients and forecaster, built once; with the reason the forecaster was chosen."""
    from aiscaler.forecast import load_default_forecaster
    from aiscaler.metrics.prometheus import PrometheusMetrics

    kube = KubeApi(load_api_client(options.kubeconfig))  # first: the quickest to fail
    token = settings.prometheus_bearer_token_file
    metrics = PrometheusMetrics(
        settings.prometheus_url,
        bearer_token_file=Path(token) if token else None,
        settings=settings.measurement,
    )
    forecaster, why = load_default_forecaster(settings.model_path)
    op = Operator(kube, metrics, forecaster, settings, options.namespace, Telemetry())
    if forecaster.name != "model":  # each service's Degraded condition says so
        op.model_problem = f"the forecast model is not in use: {why}"
    return op, why


def build_registry(options: RunOptions) -> kopf.OperatorRegistry:
    """All handlers, registered on a registry of their own (no import-time global state)."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # kopf connects with the same credentials as the operator's own client.
        config = load_api_client(options.kubeconfig).configuration
        header = config.get_api_key_with_prefix("BearerToken") or ""
        scheme, _space, token = header.partition(" ")
        return kopf.ConnectionInfo(
            server=config.host,
            ca_path=config.ssl_ca_cert,
            insecure=not config.verify_ssl,
            scheme=scheme or None,
            token=token or None,
            certificate_path=config.cert_file,
            private_key_path=config.key_file,
        )

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
        settings.peering.standalone = True  # the Lease elects the replica that acts
        settings.posting.level = logging.WARNING  # decisions get their own events
        op: Operator = memo.operator  # built by `aiscaler run` before kopf starts
        config = op.settings
        health = Health(tick_s=float(config.tick_seconds))
        metrics_app, health_app = build_apps(health, op.telemetry, time.monotonic)
        memo.runners = [
            await start_site(metrics_app, "0.0.0.0", config.metrics_port),
            await start_site(health_app, "0.0.0.0", config.health_port),
        ]
        memo.health = health
        memo.loop = asyncio.create_task(
            planning_loop(op, health, kwargs["inferenceservices"], kwargs["trainingjobs"], options)
        )
        health.ready = True

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        if "loop" in memo:  # absent when the start-up failed half-way
            memo.loop.cancel()
        for runner in memo.get("runners", []):
            await runner.cleanup()
        memo.operator.close()

    @kopf.index(GROUP, VERSION, "inferenceservices", id="inferenceservices", registry=registry)
    def inferenceservices(body: kopf.Body, **_: Any) -> dict[None, dict[str, Any]]:
        return {None: _plain(body)}

    @kopf.index(GROUP, VERSION, "trainingjobs", id="trainingjobs", registry=registry)
    def trainingjobs(body: kopf.Body, **_: Any) -> dict[None, dict[str, Any]]:
        return {None: _plain(body)}

    # Filtered with `when` rather than inside: kopf logs every handler call at info, and the
    # operator's own status writes come back as events (1,000 log lines a tick at 1,000 services).
    @kopf.on.event(GROUP, VERSION, "inferenceservices", when=_unchecked, registry=registry)
    def validate_service(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        parsed = parse_service(body, memo.operator.pool_specs())
        validate(memo, _plain(body), parsed if isinstance(parsed, list) else [])

    @kopf.on.event(GROUP, VERSION, "trainingjobs", when=_unchecked, registry=registry)
    def validate_training(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        parsed = parse_training(body, memo.operator.pool_specs())
        validate(memo, _plain(body), parsed if isinstance(parsed, list) else [])

    return registry


def validate(memo: Any, body: Mapping[str, Any], problems: list[str]) -> None:
    """Immediate feedback on a new or changed spec: the Invalid condition and a Warning event,
    written only when they change (an object's every event runs this, its own status writes
    included). A write that fails is logged; the next tick validates every object again."""
    if not problems or not memo.health.leading:
        return
    report = TickReport()
    mark_invalid(memo.operator, body, problems, time.time(), SpecReason.INVALID_SPEC, report)
    if report.errors:
        log.warning("invalid spec not yet reported: %s", "; ".join(report.errors))
    elif report.status_writes:
        log.warning("%s: invalid spec: %s", key_of(body), "; ".join(problems))


def _unchecked(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> bool:
    """Whether this event's spec still needs checking: not a deletion, and a generation no status
    write has recorded yet (the operator's own status writes come back as events too)."""
    observed = (body.get("status") or {}).get("observedGeneration")
    return event["type"] != "DELETED" and observed != body["metadata"].get("generation")


def _plain(body: Mapping[str, Any]) -> dict[str, Any]:
    # A plain copy: the tick runs in a thread while kopf replaces bodies on new events.
    return {
        key: value
        for key, value in dict(body).items()
        if key in ("apiVersion", "kind", "metadata", "spec", "status")
    }


def _bodies(index: Any) -> list[dict[str, Any]]:
    return list(index.get(None, []))


async def planning_loop(
    op: Operator, health: Health, services_index: Any, trainings_index: Any, options: RunOptions
) -> None:
    """Every tick: take or renew the Lease; if leading, run one tick over both indices.

    Ticks start on a fixed schedule, every `tick_seconds` from the first: how long a tick takes
    does not shift the ones after it. A tick that overruns its period starts the next one at the
    next scheduled time (the missed ones are skipped, and logged)."""
    tick_s = float(op.settings.tick_seconds)
    release_free_memory = free_memory_releaser()
    # kopf fills the indices from its initial listing right after start-up; the first tick
    # waits one interval so it never plans with half of the objects.
    scheduled = time.monotonic() + tick_s
    while True:
        await asyncio.sleep(max(0.0, scheduled - time.monotonic()))
        started = time.monotonic()
        health.last_loop = started
        try:
            leading, why = await asyncio.to_thread(
                try_lead,
                op.kube,
                options.namespace,
                LEASE_NAME,
                options.identity,
                time.time(),
                int(3 * tick_s),
            )
            if leading != health.leading:
                log.info("leader: %s (%s)", leading, why)
                if not leading:
                    op.memories.clear()  # another replica decides meanwhile: ours goes stale
            health.leading = leading
            op.telemetry.leader.set(1 if leading else 0)
            if leading:
                with op.telemetry.tick_seconds.time():
                    report = await asyncio.to_thread(
                        run_tick,
                        op,
                        _bodies(services_index),
                        _bodies(trainings_index),
                        time.time(),
                    )
                await asyncio.to_thread(release_free_memory)
                log.info(
                    "tick: %d resized, %d created, %d invalid, %d status writes, %d errors",
                    len(report.resized),
                    len(report.created),
                    len(report.invalid),
                    report.status_writes,
                    len(report.errors),
                )
        except Exception:  # the loop must outlive any one tick's failure
            op.telemetry.errors.labels("tick").inc()
            log.exception("planning tick failed")
        following = next_tick(scheduled, tick_s, time.monotonic())
        if following > scheduled + tick_s:
            skipped = round((following - scheduled) / tick_s) - 1
            log.warning("tick took %.1fs: %d tick(s) skipped", time.monotonic() - started, skipped)
        scheduled = following


def free_memory_releaser() -> Callable[[], object]:
    """What gives the heap pages a tick freed back to the system: glibc's `malloc_trim(0)`; a
    no-op where the C library has none (musl, macOS).

    glibc keeps freed memory in its arenas for reuse; giving back what a tick freed took the
    RSS slope of 300 services under churn from +0.23 to +0.01 MB a minute. With Python's objects
    in glibc's heap too (`PYTHONMALLOC=malloc`, as the image and the chart run it) it gives back
    what pymalloc's arenas kept, and 1,000 services under churn stay flat (bench/RESULTS.md)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except AttributeError:
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


def next_tick(scheduled: float, tick_s: float, now: float) -> float:
    """The first time on the schedule `scheduled + k * tick_s` (k >= 1) that is not past."""
    return scheduled + tick_s * max(1, math.ceil((now - scheduled) / tick_s))
