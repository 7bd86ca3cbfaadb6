"""`ibwatch run`: the long-running daemon. Builds the engine and the dispatcher
from a validated config (SQLite state and outbox, the configured sinks) and runs
both until SIGTERM or SIGINT.
"""

from __future__ import annotations

import random
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import structlog
from aiobotocore.session import AioSession

from watcher._version import __version__
from watcher.aws import AwsImageSource
from watcher.clock import Clock
from watcher.config import Config
from watcher.delivery import DeliveryPolicy, Dispatcher
from watcher.engine import Engine, Schedule
from watcher.ratelimit import AimdLimiter
from watcher.retry import RetryPolicy
from watcher.sinks.factory import build_routes
from watcher.sinks.http import HttpPoster
from watcher.store import SqliteStore, Store

log = structlog.get_logger("ibwatch")


def build_engine(
    config: Config, *, source: AwsImageSource, store: Store, clock: Clock, outbox: Dispatcher | None
) -> Engine:
    watch = config.watch
    return Engine(
        source=source,
        store=store,
        clock=clock,
        limiter=AimdLimiter(watch.max_tps, clock),
        schedule=Schedule(
            interval_for=watch.interval_for,
            jitter=watch.jitter,
            failed_recheck_interval=watch.failed_recheck_interval,
            failed_recheck_window=watch.failed_recheck_window,
        ),
        retry=RetryPolicy(
            attempts=watch.retry.attempts, base=watch.retry.base, cap=watch.retry.cap
        ),
        concurrency=watch.concurrency,
        rng=random.Random(),
        outbox=outbox,
    )


@dataclass
class Service:
    """Everything a running daemon owns."""

    config: Config
    store: Store
    source: AwsImageSource
    dispatcher: Dispatcher
    engine: Engine


@asynccontextmanager
async def open_service(
    config: Config,
    *,
    clock: Clock,
    endpoint_url: str | None = None,
    source_session: AioSession | None = None,
) -> AsyncIterator[Service]:
    """Open the store, the AWS clients and the HTTP session; close them after."""
    store = await SqliteStore.open(config.state.path)
    try:
        async with (
            AwsImageSource(
                clock=clock,
                region=config.aws.region,
                endpoint_url=endpoint_url or config.aws.endpoint_url,
                concurrency=config.watch.concurrency,
                connect_timeout=config.aws.connect_timeout,
                read_timeout=config.aws.read_timeout,
                session=source_session,
            ) as source,
            HttpPoster(user_agent=f"ibwatch/{__version__}") as poster,
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
            )
            engine = build_engine(
                config, source=source, store=store, clock=clock, outbox=dispatcher
            )
            yield Service(config, store, source, dispatcher, engine)
    finally:
        await store.close()


async def run_daemon(config: Config, *, clock: Clock) -> int:
    """Watch and deliver until SIGTERM/SIGINT; returns the exit code (0)."""
    async with open_service(config, clock=clock) as service:
        log.info(
            "ibwatch.started",
            version=__version__,
            arns=len(config.watch.arns),
            sinks=[s.name for s in config.sinks],
            state=str(config.state.path),
            config=config.redacted(),
        )
        async with anyio.create_task_group() as group:
            group.start_soon(_stop_on_signal, group.cancel_scope)
            group.start_soon(service.dispatcher.run)
            await service.engine.run(config.watch.arns)
    return 0


async def _stop_on_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("ibwatch.stopping", signal=signal.Signals(signum).name)
            scope.cancel()
            return
