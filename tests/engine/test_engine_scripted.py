"""The engine against a scripted source on virtual time: scheduling, parking, stopping."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import anyio

from watcher.engine import Engine, RunResult, Schedule
from watcher.errors import AccessDenied, Unavailable
from watcher.model import ImageStatus
from watcher.ratelimit import CubicLimiter
from watcher.retry import RetryPolicy
from watcher.store import MemoryStore
from watcher.testing import RecordingSink, ScriptedSource, ScriptEntry, VirtualClock

A = "arn:aws:imagebuilder:us-east-1:123456789012:image/a/1.0.0/1"
B = "arn:aws:imagebuilder:us-east-1:123456789012:image/b/1.0.0/1"


async def run_engine(
    scripts: Mapping[str, Sequence[ScriptEntry]],
    *,
    time_limit: float | None = None,
    stop_when_ended: bool = True,
    interval: float = 10.0,
) -> tuple[RunResult, RecordingSink, ScriptedSource, VirtualClock]:
    clock = VirtualClock()
    source = ScriptedSource(clock, scripts)
    sink = RecordingSink()
    engine = Engine(
        source=source,
        store=MemoryStore(),
        listeners=[sink],
        clock=clock,
        limiter=CubicLimiter(100, clock),
        schedule=Schedule(interval_for=lambda _: interval),
        retry=RetryPolicy(attempts=3, base=1, cap=5),
        concurrency=4,
        rng=random.Random(1),
    )
    result: RunResult | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        result = await engine.run(
            list(scripts), stop_when_ended=stop_when_ended, time_limit=time_limit
        )
        group.cancel_scope.cancel()
    assert result is not None
    return result, sink, source, clock


async def test_every_status_change_is_one_event_in_order() -> None:
    result, sink, _, _ = await run_engine(
        {A: ["PENDING", "PENDING", "BUILDING", "TESTING", "TESTING", "AVAILABLE"]}
    )
    assert [(e.previous.status if e.previous else None, e.current.status) for e in sink.events] == [
        (None, ImageStatus.PENDING),
        (ImageStatus.PENDING, ImageStatus.BUILDING),
        (ImageStatus.BUILDING, ImageStatus.TESTING),
        (ImageStatus.TESTING, ImageStatus.AVAILABLE),
    ]
    assert result.watches[A].ended


async def test_retry_waits_come_from_the_engines_seeded_rng() -> None:
    """Same seed, same waits, whatever the global `random` has drawn: a run on
    virtual time replays exactly (the first retry wait used the global one)."""
    flaky = Unavailable("503", code="ServiceUnavailableException", arn=A)
    ended_at = []
    for global_seed in (1, 2):
        random.seed(global_seed)
        _, sink, _, clock = await run_engine({A: [flaky, flaky, "AVAILABLE"]})
        assert [e.current.status for e in sink.events] == [ImageStatus.AVAILABLE]
        ended_at.append(clock.monotonic())
    assert ended_at[0] == ended_at[1] > 0


async def test_final_error_parks_one_arn_and_the_others_go_on() -> None:
    denied = AccessDenied("ForbiddenException: no", code="ForbiddenException", arn=B)
    result, sink, source, _ = await run_engine({A: ["BUILDING", "AVAILABLE"], B: [denied]})
    assert source.calls.count(B) == 1  # never retried
    assert result.watches[B].error is denied
    assert sink.events[-1].current.status is ImageStatus.AVAILABLE


async def test_unavailable_calls_are_retried_until_they_succeed() -> None:
    flaky = Unavailable("503", code="ServiceUnavailableException", arn=A)
    _, sink, source, _ = await run_engine({A: [flaky, flaky, "AVAILABLE"]})
    assert source.calls == [A, A, A]
    assert [e.current.status for e in sink.events] == [ImageStatus.AVAILABLE]


async def test_timeout_stops_a_run_whose_builds_have_not_ended() -> None:
    result, _, _, clock = await run_engine({A: ["BUILDING"]}, time_limit=300)
    assert result.timed_out
    assert clock.monotonic() == 300


async def test_polls_follow_the_interval() -> None:
    _, _, source, _ = await run_engine({A: ["BUILDING"]}, time_limit=100, interval=10)
    # 100 s at 10 s +-10%: one poll at start and one about every 10 s after.
    assert 9 <= len(source.calls) <= 12
