"""The daemon's HTTP endpoint: /healthz, /readyz, /metrics and /status.

Reads the running service's state; changes nothing. Never shows a URL or secret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from watcher.clock import Clock
from watcher.delivery import Dispatcher
from watcher.engine import Engine, Watch
from watcher.errors import ApiError
from watcher.metrics import Metrics, Readiness
from watcher.push import PushHealth
from watcher.quiet_disconnects import quiet_client_disconnects
from watcher.store.base import Store
from watcher.urls import redact_url


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
    push: Callable[[], PushHealth | None] = lambda: None
    """The push path's health, None when no `[events] queue_url` is set."""


def create_app(probes: Probes) -> web.Application:
    app = web.Application()
    app.router.add_get("/healthz", _handler(probes, _healthz))
    app.router.add_get("/readyz", _handler(probes, _readyz))
    app.router.add_get("/metrics", _handler(probes, _metrics))
    app.router.add_get("/status", partial(_status, probes))
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
    body: dict[str, Any] = {"status": "ready"}
    push = probes.push()
    if push is not None:
        # Not a reason to be unready: polling at the status intervals stands in.
        body["push"] = (
            "healthy"
            if push.healthy
            else f"falling back to polling at the status intervals: {push.reason}"
        )
    if problems:
        return web.json_response({**body, "status": "not ready", "why": problems}, status=503)
    return web.json_response(body)


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


async def _status(probes: Probes, request: web.Request) -> web.Response:
    """For operators: the watched builds still in progress (or parked on an error),
    with their status and running workflow step; `?all=1` lists ended ones too."""
    everything = request.query.get("all", "").lower() in ("1", "true", "yes")
    watches = [
        w
        for w in probes.engine.watches.values()
        if everything or w.error is not None or not w.ended
    ]
    builds = [_build_status(w) for w in sorted(watches, key=lambda w: w.arn)]
    return web.json_response(
        {
            "builds": builds,
            "count": len(builds),
            "watched": len(probes.engine.watches),
            "all": everything,
        },
        dumps=_dumps,
    )


def _build_status(watch: Watch) -> dict[str, Any]:
    tracked = watch.tracked
    snapshot = tracked.snapshot if tracked else None
    return {
        "arn": watch.arn,
        "watched": watch.watched,
        "build_arn": watch.build_arn,
        "image": f"{snapshot.name} {snapshot.version}/{snapshot.build}" if snapshot else None,
        "status": snapshot.status.value if snapshot else None,
        "status_since": tracked.status_since.isoformat() if tracked else None,
        "progress": watch.progress.model_dump(mode="json") if watch.progress else None,
        "waiting": watch.waiting,
        # `error`: why polling stopped or is paused; `last_error`: the last failure
        # retrying may still heal.
        "error": _error(watch.error),
        "last_error": _error(watch.last_error),
    }


def _error(error: ApiError | None) -> dict[str, str] | None:
    if error is None:
        return None
    # botocore names the endpoint in a connection error's message: its host is shown.
    message = _URL.sub(lambda found: redact_url(found.group()), str(error))
    return {"type": type(error).__name__, "code": error.code, "message": message}


_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"]+")


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=1)


async def start(app: web.Application, host: str, port: int) -> web.AppRunner:
    quiet_client_disconnects()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
