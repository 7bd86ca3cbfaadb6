"""`ibwatch run`: the long-running daemon. Builds the engine from a validated
config (SQLite state, the configured sinks) and watches until SIGTERM or SIGINT.
"""

from __future__ import annotations

import random
import signal

import anyio
import structlog

from watcher._version import __version__
from watcher.aws import AwsImageSource
from watcher.clock import Clock
from watcher.config import Config, LogSinkConfig, SinkConfig
from watcher.engine import Engine, Schedule
from watcher.ratelimit import AimdLimiter
from watcher.retry import RetryPolicy
from watcher.sinks import LogSink, Sink
from watcher.store import SqliteStore, Store

log = structlog.get_logger("ibwatch")


def build_sinks(configs: tuple[SinkConfig, ...]) -> list[Sink]:
    sinks: list[Sink] = []
    for config in configs:
        if isinstance(config, LogSinkConfig):
            sinks.append(LogSink())
    return sinks


def build_engine(
    config: Config, *, source: AwsImageSource, store: Store, clock: Clock, sinks: list[Sink]
) -> Engine:
    watch = config.watch
    return Engine(
        source=source,
        store=store,
        sinks=sinks,
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
    )


async def run_daemon(config: Config, *, clock: Clock) -> int:
    """Watch until SIGTERM/SIGINT; returns the exit code (0)."""
    store = await SqliteStore.open(config.state.path)
    try:
        async with AwsImageSource(
            clock=clock,
            region=config.aws.region,
            endpoint_url=config.aws.endpoint_url,
            concurrency=config.watch.concurrency,
            connect_timeout=config.aws.connect_timeout,
            read_timeout=config.aws.read_timeout,
        ) as source:
            engine = build_engine(
                config, source=source, store=store, clock=clock, sinks=build_sinks(config.sinks)
            )
            log.info(
                "ibwatch.started",
                version=__version__,
                arns=len(config.watch.arns),
                sinks=len(config.sinks),
                state=str(config.state.path),
            )
            async with anyio.create_task_group() as group:
                group.start_soon(_stop_on_signal, group.cancel_scope)
                await engine.run(config.watch.arns)
    finally:
        await store.close()
    return 0


async def _stop_on_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("ibwatch.stopping", signal=signal.Signals(signum).name)
            scope.cancel()
            return
