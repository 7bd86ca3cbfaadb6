"""`ibwatch run`: the long-running daemon. Builds the engine, the dispatcher and the
HTTP endpoint from a validated config and runs them in one task group.

Signals: SIGTERM/SIGINT stop polling at once, give pending deliveries the grace
period, then exit 0 (what is left stays in the outbox). SIGHUP reloads the config
file: added and removed ARNs and sinks take effect; a file that fails to load or
to build is refused whole and the running configuration stays. SIGHUP also polls
at once every ARN paused on credentials or access (otherwise retried on a backoff
of up to five minutes): the way to say "the role is fixed now".
"""

from __future__ import annotations

import random
import signal
from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import structlog
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session

from watcher import server
from watcher._validation import FileError
from watcher._version import __version__
from watcher.aws import AwsImageSource
from watcher.clock import Clock
from watcher.config import Config, WatchConfig, load
from watcher.config.events import queue_region
from watcher.delivery import DeliveryPolicy, Dispatcher
from watcher.discovery import Discovery, Sources
from watcher.engine import Engine, Recovery, Schedule
from watcher.metrics import MeteredSource, Metrics, Readiness
from watcher.push import PushConsumer, PushHealth, Queue, visibility_for
from watcher.push_sources import PushSources
from watcher.ratelimit import CubicLimiter
from watcher.retry import RetryPolicy
from watcher.sinks.http import HttpPoster
from watcher.store import SqliteStore
from watcher.store.base import Pruned
from watcher.wiring import build_routes

log = structlog.get_logger("ibwatch")

PRUNE_INTERVAL = 3600.0
"""Seconds between prunes of the state file ([state] keep_events); one runs at start."""


def _watched_keys(watch: WatchConfig) -> dict[str, object]:
    """The [watch] keys a reload applies: what to watch."""
    return {"arns": watch.arns, "pipelines": watch.pipelines}


@dataclass
class Service:
    """Everything a running daemon owns."""

    config: Config
    store: SqliteStore
    source: AwsImageSource
    poster: HttpPoster
    dispatcher: Dispatcher
    engine: Engine
    clock: Clock
    discovery: Discovery
    metrics: Metrics = field(default_factory=Metrics)
    readiness: Readiness | None = None
    push: PushConsumer | None = None
    """Reads `[events] queue_url`, when one is set."""


@asynccontextmanager
async def open_service(
    config: Config,
    *,
    clock: Clock,
    endpoint_url: str | None = None,
    source_session: AioSession | None = None,
) -> AsyncIterator[Service]:
    """Open the store, the AWS clients and the HTTP session; close them after."""
    store = await SqliteStore.open(config.state.path, exclusive=True)
    metrics = Metrics()
    readiness = Readiness(clock)
    session = source_session or get_session()
    try:
        async with (
            _sqs_client(config, session) as sqs,
            AwsImageSource(
                clock=clock,
                region=config.aws.region,
                endpoint_url=endpoint_url or config.aws.endpoint_url,
                concurrency=config.watch.concurrency,
                connect_timeout=config.aws.connect_timeout,
                read_timeout=config.aws.read_timeout,
                session=session,
            ) as source,
            HttpPoster(user_agent=f"ibwatch/{__version__}", clock=clock) as poster,
        ):
            delivery = config.delivery
            dispatcher = Dispatcher(
                store=store,
                clock=clock,
                policy=DeliveryPolicy(
                    base=delivery.backoff_base,
                    cap=delivery.backoff_cap,
                    retry_after_cap=delivery.retry_after_cap,
                    max_age=delivery.max_age,
                ),
                routes=build_routes(config.sinks, poster=poster, clock=clock),
                metrics=metrics,
            )
            watch = config.watch
            engine = Engine(
                source=MeteredSource(source, metrics, readiness, clock),
                workflows=source,
                store=store,
                clock=clock,
                limiter=CubicLimiter(watch.max_tps, clock),
                schedule=Schedule(
                    interval_for=watch.interval_for,
                    jitter=watch.jitter,
                    failed_recheck_interval=watch.failed_recheck_interval,
                    failed_recheck_window=watch.failed_recheck_window,
                    not_found_grace=watch.not_found_grace,
                ),
                retry=RetryPolicy(
                    attempts=watch.retry.attempts, base=watch.retry.base, cap=watch.retry.cap
                ),
                concurrency=watch.concurrency,
                rng=random.Random(),
                outbox=dispatcher,
                metrics=metrics,
                recovery=Recovery(cap=watch.paused_retry_cap),
                progress_share=config.diagnostics.progress_share,
                log_lines=config.diagnostics.log_lines,
            )
            discovery = Discovery(
                edge=source,
                engine=engine,
                store=store,
                clock=clock,
                interval=watch.discovery_interval,
                sources=sources_of(config),
                metrics=metrics,
                readiness=readiness,
                history_horizon=config.state.keep_events,
            )
            push = None
            if sqs is not None and config.events.queue_url is not None:
                push = PushConsumer(
                    queue=Queue(sqs, config.events.queue_url),
                    engine=engine,
                    get=lambda arn: engine.call(lambda: source.get(arn), urgent=True),
                    sources=push_sources_of(config),
                    clock=clock,
                    safety_interval=config.events.safety_interval,
                    wait_time=config.events.wait_time,
                    visibility_timeout=config.events.visibility_timeout
                    or visibility_for(watch.max_tps),
                    rng=random.Random(),
                    metrics=metrics,
                    follow_all=config.events.follow_all,
                    keep_malformed=config.events.malformed == "keep",
                )
            yield Service(
                config,
                store,
                source,
                poster,
                dispatcher,
                engine,
                clock,
                discovery,
                metrics,
                readiness,
                push,
            )
    finally:
        await store.close()


@asynccontextmanager
async def _sqs_client(config: Config, session: AioSession) -> AsyncIterator[Any]:
    """The aiobotocore `sqs` client of `[events] queue_url`, or None without one. Its
    endpoint is botocore's (AWS_ENDPOINT_URL_SQS overrides it), never `[aws]
    endpoint_url`, which is Image Builder's; its region is the queue URL's."""
    url = config.events.queue_url
    if url is None:
        yield None
        return
    client = session.create_client(
        "sqs",
        region_name=queue_region(url) or config.aws.region,
        config=AioConfig(
            connect_timeout=config.aws.connect_timeout,
            # A long poll holds the connection for up to wait_time seconds.
            read_timeout=config.events.wait_time + config.aws.read_timeout,
            retries={"mode": "standard", "total_max_attempts": 3},
        ),
    )
    async with client as sqs:
        yield sqs


def probes_of(service: Service) -> server.Probes:
    """What /healthz, /readyz and /metrics read of a running daemon."""
    assert service.readiness is not None
    return server.Probes(
        service.engine,
        service.dispatcher,
        service.store,
        service.metrics,
        service.readiness,
        service.clock,
        store_open=lambda: service.store.is_open,
        push=_push_health(service.push),
    )


def _push_health(push: PushConsumer | None) -> Callable[[], PushHealth | None]:
    if push is None:
        return lambda: None
    return lambda: push.health


async def run_daemon(config: Config, *, clock: Clock, config_path: Path | None = None) -> int:
    """Watch and deliver until SIGTERM/SIGINT; returns the exit code (0)."""
    async with open_service(config, clock=clock) as service:
        app = server.create_app(probes_of(service))
        http = await server.start(app, config.server.host, config.server.port)
        try:
            with anyio.open_signal_receiver(
                signal.SIGTERM, signal.SIGINT, signal.SIGHUP
            ) as signals:
                # Said only once the signals are ours: a SIGTERM sent on seeing this
                # line must stop the daemon gracefully, not kill it.
                log.info(
                    "ibwatch.started",
                    version=__version__,
                    arns=len(config.watch.arns),
                    pipelines=len(config.watch.pipelines),
                    sinks=len(config.sinks),
                    listen=config.server.listen,
                    config=config.redacted(),
                )
                await serve(service, signals, config_path)
        finally:
            await http.cleanup()
        left = sum(s.pending for s in (await service.store.outbox_stats()).values())
        log.info(
            "ibwatch.stopped",
            undelivered=left,
            note="kept in the outbox; sent after the next start" if left else "",
        )
    return 0


async def serve(service: Service, signals: AsyncIterable[int], config_path: Path | None) -> None:
    """Watch and deliver, acting on each signal as it comes, until SIGTERM/SIGINT.
    SIGHUP reloads the config file and polls every parked ARN that can recover now:
    whoever fixed the credentials or the policy says so with it."""
    async with anyio.create_task_group() as group:
        polling = anyio.CancelScope()
        group.start_soon(_watch, service, polling)
        group.start_soon(service.dispatcher.run)
        async for signum in signals:
            if signum == signal.SIGHUP:
                await _reload(service, config_path)
                _retry_now(service)
                continue
            log.info(
                "ibwatch.stopping",
                signal=signal.Signals(signum).name,
                grace_s=service.config.shutdown.grace,
            )
            polling.cancel()
            await _drain(service)
            group.cancel_scope.cancel()
            break


def _retry_now(service: Service) -> None:
    retried = service.engine.retry_parked()
    service.discovery.relist()
    if retried:
        log.info("image.retrying_paused", arns=len(retried), note="on SIGHUP")


def _changed_keys(old: Config, new: Config, sections: list[str]) -> list[str]:
    """`section.key` for each setting that differs, so the log says what to restart for."""
    changed = []
    for section in sections:
        before, after = getattr(old, section), getattr(new, section)
        applied = _watched_keys(old.watch) if section == "watch" else {}
        changed += [
            f"{section}.{key}"
            for key in type(before).model_fields
            if key not in applied and getattr(before, key) != getattr(after, key)
        ]
    return changed


def push_sources_of(config: Config) -> PushSources:
    return PushSources(versions=config.watch.version_arns, pipelines=config.watch.pipelines)


def sources_of(config: Config) -> Sources:
    return Sources(versions=config.watch.version_arns, pipelines=config.watch.pipelines)


async def _watch(service: Service, scope: anyio.CancelScope) -> None:
    with scope:
        async with anyio.create_task_group() as group:
            group.start_soon(service.discovery.run)
            group.start_soon(_prune, service)
            if service.push is not None:
                group.start_soon(service.push.run)
            await service.engine.run(service.config.watch.build_arns)
            group.cancel_scope.cancel()


async def _prune(service: Service) -> None:
    """Keep the state file to `[state] keep_events` of history: at start, then hourly.
    A failure is logged and tried again next time; it never stops the daemon."""
    while True:
        config = service.config
        try:
            pruned = await service.store.prune(
                before=service.clock.now().timestamp() - config.state.keep_events,
                keep=config.watch.build_arns,
            )
        except Exception as exc:  # the store's, or a bug: either way, polling goes on
            log.error(
                "state.prune_failed",
                error=f"{type(exc).__name__}: {exc}",
                note="tried again within the hour",
            )
        else:
            if pruned != Pruned():
                log.info(
                    "state.pruned",
                    events=pruned.events,
                    builds=pruned.builds,
                    older_than_s=config.state.keep_events,
                )
        await service.clock.sleep(PRUNE_INTERVAL)


async def _drain(service: Service) -> None:
    """Let pending deliveries finish, for the grace period at most (on the clock)."""
    with service.clock.move_on_after(service.config.shutdown.grace):
        await service.dispatcher.drained()


async def _reload(service: Service, config_path: Path | None) -> None:
    if config_path is None:
        log.warning("config.reload_skipped", why="no config file to reload")
        return
    # Everything that can fail comes before the first change: a reload is applied
    # whole or not at all, and a bad file never stops a healthy daemon.
    try:
        new = load(config_path)
        routes = build_routes(new.sinks, poster=service.poster, clock=service.clock)
        added_arns, removed_arns = await service.engine.watch_arns(new.watch.build_arns)
    except FileError as exc:
        _refused(config_path, exc.problems)
        return
    except Exception as exc:  # a sink's constructor, the store: whatever it is, refuse
        _refused(config_path, [f"{type(exc).__name__}: {exc}"])
        return
    old = service.config
    # From here on nothing raises: the rest of the new configuration swaps in.
    service.discovery.set_sources(sources_of(new))
    if service.push is not None:
        service.push.set_sources(push_sources_of(new))
    added_sinks, removed_sinks = service.dispatcher.set_routes(routes)
    unchanged = {
        "watch": new.watch.model_copy(update=_watched_keys(old.watch)) == old.watch,
        "aws": new.aws == old.aws,
        "state": new.state == old.state,
        "delivery": new.delivery == old.delivery,
        "server": new.server == old.server,
        "diagnostics": new.diagnostics == old.diagnostics,
        "events": new.events == old.events,
    }
    service.config = old.model_copy(
        update={
            "sinks": new.sinks,
            "shutdown": new.shutdown,
            "watch": old.watch.model_copy(update=_watched_keys(new.watch)),
        }
    )
    log.info(
        "config.reloaded",
        added_arns=added_arns,
        removed_arns=removed_arns,
        added_sinks=added_sinks,
        removed_sinks=removed_sinks,
    )
    needs_restart = [section for section, same in unchanged.items() if not same]
    if needs_restart:
        log.warning(
            "config.needs_restart",
            sections=needs_restart,
            keys=_changed_keys(old, new, needs_restart),
            note="only ARNs, pipelines, sinks and the shutdown grace change on reload",
        )


def _refused(config_path: Path, problems: list[str]) -> None:
    log.error(
        "config.reload_refused",
        file=str(config_path),
        problems=problems,
        note="the running configuration stays in force",
    )
