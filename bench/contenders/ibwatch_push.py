"""ibwatch as `ibwatch run` wires it (`daemon.open_service`: SQLite state, the
shared CUBIC limiter, tenacity, the engine), watching `job.arns` with the daemon's
default poll intervals; with `job.queue_url`, also the push fast path (`[events]`:
the `PushConsumer` long-polls that SQS queue and polls each build an event names at
once, polling at `safety_interval` stays the net). Without it: the poll-only daemon.

No sinks: an in-process listener notes when each build's AVAILABLE was first seen,
on the system's monotonic clock. Step look-ups are off (`progress_share = 0`), as
in the engine contender: GetImage is all this benchmark counts.
"""

from __future__ import annotations

import os
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
from watcher.model import ImageStatus, Transition


class Observer:
    """Notes each build's AVAILABLE, and when the first pass ended: the last first
    sighting (an event with no previous status), so the harness can check that no
    build changed before the contender had seen every build once."""

    def __init__(self, result: Result) -> None:
        self._result = result
        self.first_sightings = 0
        self.first_pass_done: float | None = None

    async def send(self, event: Transition) -> None:
        now = time.monotonic()
        if event.previous is None:
            self.first_sightings += 1
            self.first_pass_done = now
        if event.current.status is ImageStatus.AVAILABLE:
            self._result.observed.setdefault(event.watched, now)


async def main(job: Job) -> None:
    # Warnings only, and not on stdout: the result is the last line there.
    logs.configure(sys.stderr, log_format="json", level="warning")
    if job.sqs_endpoint is not None:
        # botocore's own override, as a user points the daemon at a local SQS.
        os.environ["AWS_ENDPOINT_URL_SQS"] = job.sqs_endpoint
    session = AioSession()
    session.set_credentials("BENCH", "bench-not-a-secret")
    result = Result()
    with tempfile.TemporaryDirectory() as state:
        document: dict[str, Any] = {
            "aws": {"region": "us-east-1", "endpoint_url": job.endpoint_url},
            "watch": {"arns": job.arns, "concurrency": job.concurrency, "max_tps": job.max_tps},
            "state": {"path": str(Path(state) / "state.db")},
            "diagnostics": {"progress_share": 0},
            "sinks": [],
        }
        if job.queue_url is not None:
            document["events"] = {"queue_url": job.queue_url}
            if job.safety_interval is not None:
                document["events"]["safety_interval"] = job.safety_interval
        config = from_mapping(document)
        async with open_service(config, clock=SystemClock(), source_session=session) as service:
            await service.source.warm(job.arns)
            observer = Observer(result)
            service.engine.add_listener(observer)
            with Stopwatch() as stopwatch:
                async with anyio.create_task_group() as group:
                    # What `daemon._watch` starts, minus discovery (nothing to
                    # discover), pruning and the HTTP server.
                    group.start_soon(service.dispatcher.run)
                    if service.push is not None:
                        group.start_soon(service.push.run)
                    await service.engine.run(config.watch.build_arns, time_limit=job.duration)
                    group.cancel_scope.cancel()
            metrics = service.metrics
    result.ok = int(metrics.calls_total("ok"))
    result.errors = int(sum(metrics.calls_total(o) for o in ("throttled", "unavailable", "final")))
    result.cpu_seconds, result.wall_seconds = stopwatch.cpu, stopwatch.wall
    push = {
        outcome: int(metrics.push_events.labels(outcome)._value.get())
        for outcome in ("received", "matched", "dropped", "malformed")
    }
    result.report(
        push=push,
        watched=len(service.engine.watches),
        first_sightings=observer.first_sightings,
        first_pass_done=observer.first_pass_done,
    )


if __name__ == "__main__":
    anyio.run(main, Job.from_argv())
