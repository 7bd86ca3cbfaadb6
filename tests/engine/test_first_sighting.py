"""A build that discovery finds is news: its first poll goes before the polls already
overdue, both in the schedule and at the limiter, so a backlog of checks on builds
known before does not delay its first event (bench section 6). On virtual time with
a scripted source."""

from __future__ import annotations

import random

import anyio

from watcher.engine import Engine, Schedule
from watcher.model import ImageSnapshot, ImageStatus, Transition
from watcher.ratelimit import CubicLimiter
from watcher.retry import RetryPolicy
from watcher.store import MemoryStore
from watcher.testing import ScriptedSource, VirtualClock

KNOWN = [f"arn:aws:imagebuilder:us-east-1:123456789012:image/app/1.0.{n}/1" for n in range(200)]
NEW = "arn:aws:imagebuilder:us-east-1:123456789012:image/web/2.0.0/7"
PIPELINE = "arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/web"


class FirstEvents:
    """Notes when (virtual clock seconds) each build's first event was told."""

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock
        self.at: dict[str, float] = {}

    async def send(self, event: Transition) -> None:
        self.at.setdefault(event.image.arn, self._clock.monotonic())


async def test_a_discovered_builds_first_poll_goes_before_the_overdue_polls() -> None:
    """200 builds at 10 calls/s: their polls take 20 s. A build discovery finds at 1 s
    waits only for the 17 polls already handed out (16 queued for the workers, one
    being handed), then takes the limiter's next token before the ordinary waiters:
    its event at 2.9 s. Without the priority in the schedule it came at 4.4 s, without
    the limiter's at 18.5 s, without both at 20 s, after the whole backlog."""
    clock = VirtualClock()
    source = ScriptedSource(clock, {**{arn: ["BUILDING"] for arn in KNOWN}, NEW: ["PENDING"]})
    first = FirstEvents(clock)
    engine = Engine(
        source=source,
        store=MemoryStore(),
        listeners=[first],
        clock=clock,
        limiter=CubicLimiter(10, clock),
        schedule=Schedule(interval_for=lambda _: 600.0, jitter=0.0),
        retry=RetryPolicy(attempts=2, base=1, cap=1),
        rng=random.Random(1),
        concurrency=16,
    )
    listed = ImageSnapshot(
        arn=NEW,
        status=ImageStatus.PENDING,
        name="web",
        version="2.0.0",
        build=7,
        observed_at=clock.now(),
    )
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        group.start_soon(engine.run, KNOWN)
        await clock.sleep(1.0)
        added = await engine.add_discovered(PIPELINE, [listed])
        await clock.sleep(30)
        group.cancel_scope.cancel()
    assert added.announced == [NEW]
    assert first.at[NEW] <= 2.9 + 1e-9
    # Nothing was skipped for it: every overdue poll was still made, once.
    assert sorted(source.calls) == sorted([*KNOWN, NEW])
    assert max(first.at.values()) <= 20.1 + 1e-9
