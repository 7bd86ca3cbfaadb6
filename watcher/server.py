"""The daemon's HTTP endpoint: /healthz, /readyz and /metrics.

Reads the running service's state; changes nothing. Never shows a URL or secret.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from watcher.clock import Clock
from watcher.delivery import Dispatcher
from watcher.engine import Engine
from watcher.metrics import Metrics, Readiness
from watcher.quiet_disconnects import quiet_client_disconnects
from watcher.store.base import Store


@dataclass
class Probes:
    """What the endpoint looks at."""

    engine: Engine
    dispatcher: Dispatcher
    store: Store
    metrics: Metrics
    readiness: Readiness
    clock: Clock
    store_open: Callable[[], bool]


def create_app(probes: Probes) -> web.Application:
    app = web.Application()
    app.router.add_get("/healthz", _handler(probes, _healthz))
    app.router.add_get("/readyz", _handler(probes, _readyz))
    app.router.add_get("/metrics", _handler(probes, _metrics))
    return app


Handler = Callable[[Probes], Awaitable[web.Response]]


def _handler(probes: Probes, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(_: web.Request) -> web.Response:
        return await handler(probes)

    return handle


async def _healthz(probes: Probes) -> web.Response:
    # Answering at all shows the event loop is alive; the engine's flag shows its
    # task group still runs.
    if not probes.engine.running:
        return web.json_response(
            {"status": "stopped", "why": "the watch engine is not running"}, status=503
        )
    return web.json_response({"status": "ok"})


async def _readyz(probes: Probes) -> web.Response:
    problems = []
    if not probes.store_open():
        problems.append("the state store is not open")
    if not probes.readiness.ready:
        problems.append(
            f"the Image Builder API was not reached recently: {probes.readiness.reason}"
        )
    # Said even while other calls succeed: one role denied on some images is not
    # the API being unreachable, yet those builds are not being watched.
    for cause, count in sorted(probes.engine.paused().items()):
        problems.append(
            f"{count} watched ARN{'s' if count != 1 else ''} paused on {cause}: "
            "polled again with backoff, and at once on SIGHUP"
        )
    if problems:
        return web.json_response({"status": "not ready", "why": problems}, status=503)
    return web.json_response({"status": "ready"})


async def _metrics(probes: Probes) -> web.Response:
    metrics = probes.metrics
    metrics.rate.set(probes.engine.limiter.rate)
    metrics.set_images(
        w.tracked.snapshot.status.value if w.tracked else "UNKNOWN"
        for w in probes.engine.watches.values()
    )
    now = probes.clock.now().timestamp()
    stats = await probes.store.outbox_stats()
    for sink in probes.dispatcher.sinks:
        sink_stats = stats.get(sink)
        pending = sink_stats.pending if sink_stats else 0
        oldest = sink_stats.oldest_created_at if sink_stats else None
        metrics.outbox_pending.labels(sink).set(pending)
        metrics.outbox_oldest.labels(sink).set(max(0.0, now - oldest) if oldest else 0.0)
        metrics.dead_letters.labels(sink).set(sink_stats.dead_letters if sink_stats else 0)
    body = generate_latest(metrics.registry)
    response = web.Response(body=body)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response


async def start(app: web.Application, host: str, port: int) -> web.AppRunner:
    quiet_client_disconnects()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
