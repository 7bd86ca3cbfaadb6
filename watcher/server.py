"""The daemon's HTTP endpoint: /healthz, /readyz, /metrics and /status.

Reads the running service's state; changes nothing. Never shows a URL or secret.
A standby replica (`watcher.leadership`) is healthy and ready while it can take
over (and someone leads); it reports no builds, no outbox and none of the leader's
gauges (rate limits, push health, what discovery follows and what fails to list),
which are the leader's to report.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

from watcher.clock import Clock
from watcher.delivery import Dispatcher
from watcher.discovery import SourceFailure
from watcher.engine import Engine, Watch
from watcher.errors import ApiError
from watcher.leadership import Leadership, Sole
from watcher.metrics import NOT_POLLED, Metrics, Readiness
from watcher.model import InvalidArn
from watcher.push import PushHealth
from watcher.quiet_disconnects import quiet_client_disconnects
from watcher.store import StoreError
from watcher.store.base import OutboxStats, Store
from watcher.urls import redact_url

log = structlog.get_logger("ibwatch")

OUTBOX_READ_WITHIN = 5.0
"""Seconds a scrape waits for the outbox's counts. With the database down, the store
waits 30 s for a connection (`watcher.store.postgres.WAIT_FOR_DATABASE`), longer than
Prometheus's default scrape_timeout (10 s): the whole scrape would fail, and with it
`ibwatch_ready`, the one series that says something is wrong. Half that timeout, so
that a slow but healthy database (counting many dead letters) still answers in time
and the rest of the scrape has the other half; `ibwatch_outbox_readable` says when
it did not."""


@dataclass
class Probes:
    """What the endpoint looks at."""

    engine: Callable[[], Engine]
    """The current term's engine (a standby's is idle)."""
    dispatcher: Callable[[], Dispatcher]
    store: Store
    metrics: Metrics
    readiness: Readiness
    clock: Clock
    store_open: Callable[[], bool]
    push: Callable[[], PushHealth | None] = lambda: None
    """The push path's health, None when no `[events] queue_url` is set."""
    leadership: Leadership = field(default_factory=Sole)
    failing_sources: Callable[[], Sequence[SourceFailure]] = lambda: ()
    """The current term's sources of builds whose last listing failed."""


def create_app(probes: Probes) -> web.Application:
    app = web.Application()
    app.router.add_get("/healthz", _handler(probes, _healthz))
    app.router.add_get("/readyz", _handler(probes, _readyz))
    app.router.add_get("/metrics", _handler(probes, partial(_metrics, outbox=_OutboxGauges())))
    app.router.add_get("/status", partial(_status, probes))
    return app


Handler = Callable[[Probes], Awaitable[web.Response]]


def _handler(probes: Probes, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(_: web.Request) -> web.Response:
        return await handler(probes)

    return handle


async def _healthz(probes: Probes) -> web.Response:
    # Answering at all shows the event loop is alive; the engine's flag shows its
    # task group still runs. A standby runs none.
    if probes.leadership.role == "leader" and not probes.engine().running:
        return web.json_response(
            {"status": "stopped", "why": "the watch engine is not running"}, status=503
        )
    return web.json_response({"status": "ok"})


async def _readyz(probes: Probes) -> web.Response:
    return _ready_or_not(*_readiness(probes))


def _readiness(probes: Probes) -> tuple[dict[str, Any], list[str]]:
    """/readyz's body and its problems (none: ready); `ibwatch_ready` says the same."""
    problems = []
    leadership = probes.leadership
    body: dict[str, Any] = {"status": "ready"}
    if leadership.shared:
        body["role"] = leadership.role
    if not probes.store_open():
        problems.append("the state store is not open")
    if leadership.role == "standby":
        # Ready to take over: what a standby is for. The API is the leader's to reach.
        # Its problem: the database is out of reach, or nobody has led for two
        # failovers (the lock is held by a session that neither leads nor ends).
        if leadership.problem is not None:
            problems.append(leadership.problem)
        return body, problems
    if not probes.readiness.ready:
        problems.append(
            f"the Image Builder API was not reached recently: {probes.readiness.reason}"
        )
    # Said even while other calls succeed: one role denied on some images is not
    # the API being unreachable, yet those builds are not being watched.
    for cause, count in sorted(probes.engine().paused().items()):
        problems.append(
            f"{count} watched ARN{'s' if count != 1 else ''} paused on {cause}: "
            "polled again with backoff, and at once on SIGHUP"
        )
    push = probes.push()
    if push is not None:
        # Not a reason to be unready: polling at the status intervals stands in.
        body["push"] = (
            "healthy"
            if push.healthy
            else f"falling back to polling at the status intervals: {push.reason}"
        )
    failing = len(probes.failing_sources())
    if failing:
        # Not a reason to be unready either: one source not found (a typo in the
        # config) must not take the daemon, and every other build, out of service.
        # Discovery makes /readyz 503 itself when its calls cannot reach the API.
        body["discovery"] = (
            f"{failing} source{'s' if failing != 1 else ''} of builds failing to list: see /status"
        )
    return body, problems


def _ready_or_not(body: dict[str, Any], problems: list[str]) -> web.Response:
    if problems:
        return web.json_response({**body, "status": "not ready", "why": problems}, status=503)
    return web.json_response(body)


async def _metrics(probes: Probes, *, outbox: _OutboxGauges) -> web.Response:
    metrics = probes.metrics
    engine = probes.engine()
    metrics.set_images(
        w.tracked.snapshot.status.value if w.tracked else NOT_POLLED
        for w in engine.watches.values()
    )
    metrics.ready.set(0 if _readiness(probes)[1] else 1)  # every replica's own verdict
    if probes.leadership.role == "leader":
        metrics.set_rates(engine.limiter.rates())
        await outbox.update(probes)
        body = generate_latest(metrics.registry)
    else:
        # The outbox is the shared database's and the rates and push health the
        # running term's: the leader reports them. A standby's copy would count the
        # outbox twice in a sum over replicas, and a past term's would linger.
        body = generate_latest(_Without(metrics.registry, _leader_only(metrics)))
    response = web.Response(body=body)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response


def _leader_only(metrics: Metrics) -> frozenset[str]:
    """The families only the leader exports."""
    gauges = (
        metrics.rate,
        metrics.push_healthy,
        # Discovery runs in the leader's term only: a standby follows nothing.
        metrics.pipelines_followed,
        metrics.discovery_sources_failing,
        metrics.outbox_pending,
        metrics.outbox_oldest,
        metrics.dead_letters,
        metrics.outbox_readable,
    )
    return frozenset(family.name for gauge in gauges for family in gauge.describe())


class _Without:
    """A registry's metrics but for some families, for `generate_latest`."""

    def __init__(self, registry: CollectorRegistry, names: frozenset[str]) -> None:
        self._registry = registry
        self._names = names

    def collect(self) -> Iterable[Metric]:
        return (family for family in self._registry.collect() if family.name not in self._names)


class _OutboxGauges:
    """The leader's outbox gauges, read from the store at each scrape. When the store
    cannot answer (the database is down while this replica still leads), they are
    left out of that scrape rather than failing it, so that `ibwatch_ready` and the
    rest still reach Prometheus, and `ibwatch_outbox_readable` is 0 (1 when read);
    the log says so once when it starts and once when it ends, not at every scrape."""

    def __init__(self) -> None:
        self._failing = False

    async def update(self, probes: Probes) -> None:
        metrics = probes.metrics
        gauges = (metrics.outbox_pending, metrics.outbox_oldest, metrics.dead_letters)
        why = f"no answer within {OUTBOX_READ_WITHIN:g}s"
        stats = None
        with probes.clock.move_on_after(OUTBOX_READ_WITHIN):
            try:
                stats = await probes.store.outbox_stats()
            except StoreError as exc:
                why = str(exc)
        metrics.outbox_readable.set(0 if stats is None else 1)
        if stats is None:
            for gauge in gauges:
                gauge.clear()  # no stale values: the series pause until the store answers
            if not self._failing:
                log.warning(
                    "metrics.outbox_unreadable",
                    error=why,
                    note="the outbox gauges are left out of /metrics until the store answers",
                )
            self._failing = True
            return
        if self._failing:
            log.info("metrics.outbox_readable", note="the outbox gauges are back in /metrics")
            self._failing = False
        _set_outbox_gauges(probes, stats)


def _set_outbox_gauges(probes: Probes, stats: Mapping[str, OutboxStats]) -> None:
    metrics = probes.metrics
    now = probes.clock.now().timestamp()
    for sink in probes.dispatcher().sinks:
        sink_stats = stats.get(sink)
        pending = sink_stats.pending if sink_stats else 0
        oldest = sink_stats.oldest_created_at if sink_stats else None
        metrics.outbox_pending.labels(sink).set(pending)
        metrics.outbox_oldest.labels(sink).set(max(0.0, now - oldest) if oldest else 0.0)
        metrics.dead_letters.labels(sink).set(sink_stats.dead_letters if sink_stats else 0)


async def _status(probes: Probes, request: web.Request) -> web.Response:
    """For operators: the watched builds still in progress (or parked on an error),
    with their status and running workflow step (`?all=1` lists ended ones too), and
    the sources of builds whose listing fails."""
    everything = request.query.get("all", "").lower() in ("1", "true", "yes")
    engine = probes.engine()
    watches = [
        w for w in engine.watches.values() if everything or w.error is not None or not w.ended
    ]
    builds = [_build_status(w) for w in sorted(watches, key=lambda w: w.arn)]
    body: dict[str, Any] = {
        "builds": builds,
        "count": len(builds),
        "watched": len(engine.watches),
        "all": everything,
    }
    body["discovery"] = {
        # Each source of builds (version ARN, pipeline, a pipeline of `/*`) whose last
        # listing failed, and why: the builds it would bring are not being watched.
        "failing": [_source_status(failure) for failure in probes.failing_sources()],
    }
    if probes.leadership.shared:
        body["role"] = probes.leadership.role  # a standby watches nothing
    return web.json_response(body, dumps=_dumps)


def _source_status(failure: SourceFailure) -> dict[str, Any]:
    return {
        "source": failure.source,
        "error": _error(failure.error),
        "since": failure.since.isoformat(),
    }


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


def _error(error: ApiError | InvalidArn | None) -> dict[str, str] | None:
    if error is None:
        return None
    # botocore names the endpoint in a connection error's message: its host is shown.
    message = _URL.sub(lambda found: redact_url(found.group()), str(error))
    code = error.code if isinstance(error, ApiError) else ""
    return {"type": type(error).__name__, "code": code, "message": message}


_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"]+")


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=1)


def bound_address(runner: web.AppRunner) -> str | None:
    """host:port the endpoint listens on (port 0 asks the kernel for a free one)."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            host, port = str(address[0]), int(address[1])
            return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return None


async def start(app: web.Application, host: str, port: int) -> web.AppRunner:
    quiet_client_disconnects()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
