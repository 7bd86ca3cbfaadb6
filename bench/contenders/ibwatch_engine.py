"""ibwatch's engine, wired as the daemon wires it (SQLite state, metered source,
shared CUBIC limiter, tenacity retries), with `--no-shared-limiter` for the contender
that keeps the per-call backoff but drops the shared limiter."""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

import anyio
from aiobotocore.session import AioSession

from bench.contenders.common import Job, Result, Stopwatch
from watcher.aws import AwsImageSource
from watcher.clock import SystemClock
from watcher.engine import Engine, Schedule
from watcher.metrics import MeteredSource, Metrics, Readiness
from watcher.model import ImageStatus, Transition
from watcher.ratelimit import CubicLimiter
from watcher.retry import RetryPolicy
from watcher.store import SqliteStore


class Unlimited:
    """A limiter that never waits and never slows anyone down."""

    rate = float("inf")

    async def acquire(self) -> float:
        return time.monotonic()

    def on_success(self, ticket: float) -> None:
        pass

    def on_throttle(self, ticket: float) -> None:
        pass


class Observer:
    def __init__(self, result: Result) -> None:
        self._result = result

    async def send(self, event: Transition) -> None:
        if event.current.status is ImageStatus.AVAILABLE:
            self._result.observed.setdefault(event.watched, time.monotonic())


async def main(job: Job, shared_limiter: bool) -> None:
    clock = SystemClock()
    session = AioSession()
    session.set_credentials("BENCH", "bench-not-a-secret")
    result = Result()
    metrics = Metrics()
    with tempfile.TemporaryDirectory() as state:
        store = await SqliteStore.open(Path(state) / "state.db")
        async with AwsImageSource(
            clock=clock,
            region="us-east-1",
            endpoint_url=job.endpoint_url,
            concurrency=job.concurrency,
            session=session,
        ) as aws:
            await aws.warm(job.arns)
            limiter = CubicLimiter(job.max_tps, clock) if shared_limiter else Unlimited()
            engine = Engine(
                source=MeteredSource(aws, metrics, Readiness(clock), clock),
                store=store,
                clock=clock,
                limiter=limiter,  # type: ignore[arg-type]
                schedule=Schedule(interval_for=lambda _: job.interval, jitter=0.1),
                retry=RetryPolicy(),
                concurrency=job.concurrency,
                rng=random.Random(),
                listeners=[Observer(result)],
            )
            with Stopwatch() as watch:
                async with anyio.create_task_group() as group:
                    if job.calls is not None:
                        group.start_soon(
                            _stop_after_calls, metrics, job, result, group.cancel_scope
                        )
                    await engine.run(job.arns, time_limit=job.duration)
                    group.cancel_scope.cancel()
        await store.close()
    result.ok = int(metrics.calls_total("ok"))
    result.errors = int(sum(metrics.calls_total(o) for o in ("throttled", "unavailable", "final")))
    result.cpu_seconds, result.wall_seconds = watch.cpu, watch.wall
    result.finish_steady(time.process_time())
    result.report(watched=len(engine.watches))


async def _stop_after_calls(
    metrics: Metrics, job: Job, result: Result, scope: anyio.CancelScope
) -> None:
    """Stop after `job.calls` successes; note where the first pass over the ARNs
    (every first sighting, with its commit) ended, for the steady-state figure."""
    assert job.calls is not None
    # A benchmark harness polling a counter; the engine itself has no such hook.
    while (ok := metrics.calls_total("ok")) < job.calls:
        if result.steady_from is None and ok >= len(job.arns):
            result.steady_from = (time.process_time(), int(ok))
        await anyio.sleep(0.01)
    scope.cancel()


if __name__ == "__main__":
    anyio.run(main, Job.from_argv(), "--no-shared-limiter" not in sys.argv)
