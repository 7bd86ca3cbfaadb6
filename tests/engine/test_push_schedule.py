"""What the push path asks of the engine: `poll_now` polls a watched build at once and
returns after its commit, `adopt` watches a build an event named with the answer
already fetched, and `set_safety_interval` slows the polls of builds in progress
while events arrive and brings the status intervals back when they stop. Also
`PushSources`, which says what source an event's build belongs to. On virtual time
with a scripted source."""

from __future__ import annotations

import functools
import random
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import anyio

from watcher.engine import Engine, Schedule
from watcher.model import ImageSnapshot, ImageStatus
from watcher.push_sources import PushSources
from watcher.ratelimit import CubicLimiter
from watcher.retry import RetryPolicy
from watcher.store import MemoryStore, SqliteStore, Store
from watcher.testing import RecordingSink, ScriptedSource, VirtualClock

A = "arn:aws:imagebuilder:us-east-1:123456789012:image/a/1.0.0/1"
B = "arn:aws:imagebuilder:us-east-1:123456789012:image/b/2.0.0/5"


def engine_on(
    clock: VirtualClock,
    source: ScriptedSource,
    sink: RecordingSink | None = None,
    *,
    store: Store | None = None,
    rate: float = 100,
    interval: float = 30.0,
    jitter: float = 0.0,
    concurrency: int = 16,
) -> Engine:
    """An engine polling every `interval` (every status alike) at `rate` calls/s."""
    return Engine(
        source=source,
        store=store or MemoryStore(),
        listeners=[sink] if sink is not None else [],
        clock=clock,
        limiter=CubicLimiter(rate, clock),
        schedule=Schedule(interval_for=lambda _: interval, jitter=jitter),
        retry=RetryPolicy(attempts=2, base=1, cap=1),
        rng=random.Random(1),
        concurrency=concurrency,
    )


async def test_a_safety_interval_slows_polls_of_builds_in_progress_until_it_is_lifted() -> None:
    clock = VirtualClock()
    source = ScriptedSource(clock, {A: ["BUILDING"]})
    engine = engine_on(clock, source, RecordingSink())
    engine.set_safety_interval(600.0)
    engine.events_from("us-east-1")
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        group.start_soon(engine.run, [A])
        await clock.sleep(3601)
        during = len(source.calls)
        engine.set_safety_interval(None)  # the queue stopped answering
        await clock.sleep(590)
        group.cancel_scope.cancel()
    assert during == 7, "at 0, 600, ..., 3600 s: the safety interval, not every 30 s"
    # Back to 30 s at once: the poll due at 4200 s came at 3631 s, then every 30 s
    # until 4191 s.
    assert len(source.calls) - during == 19


async def test_poll_now_polls_at_once_and_returns_after_the_commit() -> None:
    clock = VirtualClock()
    source = ScriptedSource(clock, {A: ["BUILDING", "TESTING", "AVAILABLE"]})
    sink = RecordingSink()
    engine = engine_on(clock, source, sink)
    engine.set_safety_interval(600.0)
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        group.start_soon(engine.run, [A])
        await clock.sleep(10)
        assert await engine.poll_now(A) == "committed"
        assert [e.current.status.value for e in sink.events] == ["BUILDING", "TESTING"]
        assert await engine.poll_now(B) == "unwatched", "the caller decides"
        group.cancel_scope.cancel()
    assert len(source.calls) == 2


async def test_events_received_together_cost_one_get_image_but_a_later_one_its_own() -> None:
    """Two events of one build in one batch (a duplicate, or two changes): the first
    one's GetImage went out after both arrived, so it answers both. An event received
    after that GetImage went out gets a poll of its own: the build may have changed
    since."""
    clock = VirtualClock()
    source = ScriptedSource(clock, {A: ["BUILDING", "TESTING", "DISTRIBUTING", "AVAILABLE"]})
    sink = RecordingSink()
    engine = engine_on(clock, source, sink)
    engine.set_safety_interval(600.0)
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        group.start_soon(engine.run, [A])
        await clock.sleep(10)
        batch = engine.fetch_mark()
        outcomes: list[str] = []

        async def handle() -> None:
            outcomes.append(await engine.poll_now(A, received_at=batch))

        async with anyio.create_task_group() as handlers:
            handlers.start_soon(handle)
            handlers.start_soon(handle)
        together = len(source.calls)
        # The next batch arrives after that GetImage went out: polled again.
        later = engine.fetch_mark()
        assert await engine.poll_now(A, received_at=later) == "committed"
        again = len(source.calls)
        # Another event of that same batch, handled after: that poll answers it.
        assert await engine.poll_now(A, received_at=later) == "committed"
        group.cancel_scope.cancel()
    assert outcomes == ["committed", "committed"]
    assert together == 2, "the first pass and one poll for the batch"
    assert again == 3
    assert len(source.calls) == 3
    assert [e.current.status.value for e in sink.events] == ["BUILDING", "TESTING", "DISTRIBUTING"]


async def test_an_events_poll_goes_before_the_scheduled_polls_waiting_for_the_limiter() -> None:
    """200 builds at 10 calls/s: their first polls take 20 s. An event at 1 s of a
    build whose turn would come near the end is polled with the limiter's next token,
    and its scheduled poll, now void, is not made."""
    builds = [
        f"arn:aws:imagebuilder:us-east-1:123456789012:image/app/1.0.{n}/1" for n in range(200)
    ]
    clock = VirtualClock()
    source = ScriptedSource(clock, {arn: ["BUILDING", "TESTING"] for arn in builds})
    sink = RecordingSink()
    engine = engine_on(clock, source, sink, rate=10, interval=600.0)
    late = builds[180]
    # Builds whose scheduled poll is waiting for the limiter when the event comes,
    # and the next ones a worker takes while the event's poll holds the build.
    queued, taken_meanwhile = builds[20], builds[27]
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        group.start_soon(engine.run, builds)
        await clock.sleep(1.0)
        mark = engine.fetch_mark()
        assert await engine.poll_now(late, received_at=mark) == "committed"
        answered = clock.monotonic()
        async with anyio.create_task_group() as handlers:
            for arn in (queued, taken_meanwhile):
                handlers.start_soon(functools.partial(engine.poll_now, arn, received_at=mark))
        await clock.sleep(30)
        group.cancel_scope.cancel()
    assert answered <= 1.1 + 1e-9, "with the next token, not after 16 waiting polls"
    assert source.calls.count(late) == 1, "its scheduled first poll was void"
    # A scheduled poll sent after the event arrived answers it, and one taken from
    # the schedule before an event's poll committed is not made again.
    assert source.calls.count(queued) == 1
    assert source.calls.count(taken_meanwhile) == 1
    assert len(source.calls) == 200
    assert [e.current.status.value for e in sink.events if e.image.arn == late] == ["BUILDING"]


async def test_adopt_watches_a_build_with_the_answer_already_fetched() -> None:
    clock = VirtualClock()
    source = ScriptedSource(clock, {A: ["BUILDING"], B: ["TESTING"]})
    sink = RecordingSink()
    engine = engine_on(clock, source, sink)
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        group.start_soon(engine.run, [A])
        await clock.sleep(1)
        await engine.adopt("events", await source.get(B))
        calls = len(source.calls)
        group.cancel_scope.cancel()
    assert calls == 2, "one GetImage for each build: the fetched answer is B's first poll"
    assert engine.watches[B].watched == "events"
    assert [(e.image.arn, e.current.status.value) for e in sink.events][-1] == (B, "TESTING")


async def test_the_safety_interval_holds_only_in_regions_events_came_from() -> None:
    """A queue wired in us-east-1 hears nothing of eu-west-1's builds: those keep their
    status interval."""
    elsewhere = "arn:aws:imagebuilder:eu-west-1:123456789012:image/c/1.0.0/1"
    clock = VirtualClock()
    source = ScriptedSource(clock, {A: ["BUILDING"], elsewhere: ["BUILDING"]})
    engine = engine_on(clock, source, RecordingSink())
    engine.set_safety_interval(600.0)
    engine.events_from("us-east-1")
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        group.start_soon(engine.run, [A, elsewhere])
        await clock.sleep(1201)
        group.cancel_scope.cancel()
    assert (source.calls.count(A), source.calls.count(elsewhere)) == (3, 41)


def snapshot(arn: str, pipeline: str | None) -> ImageSnapshot:
    return ImageSnapshot(
        arn=arn,
        status=ImageStatus.BUILDING,
        name="b",
        version="2.0.0",
        build=5,
        pipeline=pipeline,
        observed_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_push_sources_match_versions_wildcards_and_pipelines() -> None:
    version = "arn:aws:imagebuilder:us-east-1:123456789012:image/b/2.x.x"
    nightly = "arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/nightly"
    every = "arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/*"
    assert PushSources(versions=(version,)).source_of(B, None) == version
    assert PushSources(versions=(version,)).source_of(A, None) is None
    pipelines = PushSources(pipelines=(nightly,))
    assert pipelines.needs_snapshot(B)
    assert pipelines.source_of(B, None) is None
    assert pipelines.source_of(B, snapshot(B, "nightly")) == nightly
    assert pipelines.source_of(B, snapshot(B, "weekly")) is None
    # The wildcard names the build's own pipeline, as discovery's sources do.
    assert PushSources(pipelines=(every,)).source_of(B, snapshot(B, "weekly")) == (
        "arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/weekly"
    )
    elsewhere = "arn:aws:imagebuilder:eu-west-1:123456789012:image-pipeline/*"
    assert PushSources(pipelines=(elsewhere,)).source_of(B, snapshot(B, "weekly")) is None
    assert not PushSources(versions=(version,)).needs_snapshot(B)


async def test_two_events_of_one_new_build_adopt_it_once(tmp_path: Path) -> None:
    """Two messages of one build in a batch: both adopt it while the state file is
    read (a thread: each waits there); the build is announced once."""
    clock = VirtualClock()
    source = ScriptedSource(clock, {A: ["BUILDING"], B: ["TESTING"]})
    sink = RecordingSink()
    store = await SqliteStore.open(tmp_path / "state.db")
    engine = engine_on(clock, source, sink, store=store)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(clock.drive)
            snapshot_b = await source.get(B)
            async with anyio.create_task_group() as events:
                events.start_soon(engine.adopt, "events", snapshot_b)
                events.start_soon(engine.adopt, "events", snapshot_b)
            group.cancel_scope.cancel()
    finally:
        await store.close()
    assert [(e.image.arn, e.current.status.value) for e in sink.events] == [(B, "TESTING")]


async def test_the_first_event_of_a_region_moves_its_polls_out_to_the_safety_interval() -> None:
    """Else, for a whole status interval after start, each build would cost its
    scheduled polls and its events' polls."""
    clock = VirtualClock()
    source = ScriptedSource(clock, {A: ["BUILDING"]})
    engine = engine_on(clock, source, interval=300.0)
    engine.set_safety_interval(600.0)  # the queue answers; no event came yet
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        group.start_soon(engine.run, [A])
        await clock.sleep(10)
        assert engine.watches[A].due == 300.0, "no event from us-east-1 yet: its interval"
        engine.events_from("us-east-1")
        moved_to = engine.watches[A].due
        await clock.sleep(1000)
        group.cancel_scope.cancel()
    assert 300 < moved_to <= 10 + 600, "never sooner than due, never past the net"
    assert len(source.calls) == 2, "at 0 s and at the moved time, not at 300 s"


async def test_a_fleet_moved_out_by_the_first_event_is_spread_over_the_safety_interval() -> None:
    """1,000 builds polled every 60 s at 50 calls/s: their next polls are spread over
    20 s. The first event moves them within the next 600 s: drawn evenly, none
    sooner than due, so no minute holds much more than a tenth of them (moved to
    the end of the interval, all of them fell in its last 60 s)."""
    builds = [
        f"arn:aws:imagebuilder:us-east-1:123456789012:image/app/1.0.{n}/1" for n in range(1000)
    ]
    clock = VirtualClock()
    source = ScriptedSource(clock, {arn: ["BUILDING"] for arn in builds})
    engine = engine_on(clock, source, rate=50, interval=60.0, jitter=0.1)
    engine.set_safety_interval(600.0)
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        group.start_soon(engine.run, builds)
        await clock.sleep(25)  # every first poll made
        due_before = {arn: engine.watches[arn].due for arn in builds}
        now = clock.monotonic()
        engine.events_from("us-east-1")
        due_after = {arn: engine.watches[arn].due for arn in builds}
        group.cancel_scope.cancel()
    assert all(due_after[arn] >= due_before[arn] for arn in builds)
    assert max(due_after.values()) <= now + 600
    per_minute = Counter(int((due - now) // 60) for due in due_after.values())
    assert max(per_minute.values()) <= 150, sorted(per_minute.items())
