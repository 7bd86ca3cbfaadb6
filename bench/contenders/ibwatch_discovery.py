"""ibwatch following pipelines, wired exactly as `ibwatch run` wires it
(`daemon.open_service`: SQLite state, the shared CUBIC limiter, tenacity, the
engine, and `Discovery` over the same AWS source), with no sinks: an in-process
listener notes each build's first event instead.

Runs `job.passes` discovery passes (then stops before the next one starts) or
`job.duration` seconds. Reports when each pass started and ended (and the CPU
time used by then) and, per build ARN, when its first event came, both on the system's
monotonic clock.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from aiobotocore.session import AioSession

from bench.contenders.common import Job, Result, Stopwatch
from watcher import logs
from watcher.clock import SystemClock
from watcher.config import from_mapping
from watcher.daemon import open_service
from watcher.discovery import Discovery
from watcher.model import Transition


class FirstEvent:
    def __init__(self, seen: dict[str, float]) -> None:
        self._seen = seen

    async def send(self, event: Transition) -> None:
        self._seen.setdefault(event.image.arn, time.monotonic())


async def main(job: Job) -> None:
    # Warnings only, and not on stdout: the result is the last line there.
    logs.configure(sys.stderr, log_format="json", level="warning")
    session = AioSession()
    session.set_credentials("BENCH", "bench-not-a-secret")
    result = Result()
    first_event: dict[str, float] = {}
    starts: list[float] = []
    passes: list[float] = []
    cpu: list[float] = []
    with tempfile.TemporaryDirectory() as state:
        watch: dict[str, Any] = {
            "pipelines": job.arns,
            "discovery_interval": job.interval,
            "concurrency": job.concurrency,
            "max_tps": job.max_tps,
        }
        if job.intervals:
            watch["intervals"] = job.intervals
        config = from_mapping(
            {
                "aws": {"region": "us-east-1", "endpoint_url": job.endpoint_url},
                "watch": watch,
                "state": {"path": str(Path(state) / "state.db")},
                "sinks": [],
            }
        )
        async with open_service(config, clock=SystemClock(), source_session=session) as service:
            await service.source.warm(job.arns)
            service.engine.add_listener(FirstEvent(first_event))
            began = time.monotonic()
            with Stopwatch() as stopwatch:
                async with anyio.create_task_group() as group:
                    # What `daemon._watch` and `run_daemon` start, minus the HTTP server.
                    _note_passes(service.discovery, starts, passes, cpu, job, group.cancel_scope)
                    group.start_soon(service.discovery.run)
                    group.start_soon(service.dispatcher.run)
                    await service.engine.run(config.watch.build_arns, time_limit=job.duration)
                    group.cancel_scope.cancel()
    result.cpu_seconds, result.wall_seconds = stopwatch.cpu, stopwatch.wall
    result.report(
        began=began,
        pass_starts=starts,
        passes=passes,
        pass_cpu=cpu,
        first_event=first_event,
        watched=len(service.engine.watches),
    )


def _note_passes(
    discovery: Discovery,
    starts: list[float],
    passes: list[float],
    cpu: list[float],
    job: Job,
    scope: anyio.CancelScope,
) -> None:
    """Note the moment each pass starts and ends (before the next one can start),
    and stop after `job.passes`. Only wraps the daemon's own `discover_once`: discovery has
    no such hook, and the benchmark splits the simulator's requests at these ends."""
    inner = discovery.discover_once

    async def discover_once() -> None:
        starts.append(time.monotonic())
        await inner()
        passes.append(time.monotonic())
        cpu.append(time.process_time())
        if job.passes is not None and len(passes) >= job.passes:
            scope.cancel()

    discovery.discover_once = discover_once  # type: ignore[method-assign]


if __name__ == "__main__":
    anyio.run(main, Job.from_argv())
