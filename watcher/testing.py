"""Fakes shipped for tests, ours and users': they replace real time and I/O with
deterministic stand-ins. Nothing here may touch the network or the real clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

from watcher.clock import Clock
from watcher.errors import NotFound
from watcher.model import Arn, ImageSnapshot, ImageStatus, Transition
from watcher.sinks.base import Sink

__all__ = ["FakeClock", "RecordingSink", "ScriptedSource", "TimelessSink", "VirtualClock"]

T = TypeVar("T")
ScriptEntry = ImageStatus | str | ImageSnapshot | BaseException

_DEFAULT_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class _Alarm:
    """A callback due at a point of a fake clock's time; `live` False once it fired
    or nobody needs it any more (then it neither fires nor pulls time forward)."""

    __slots__ = ("fire", "live")

    def __init__(self, fire: Callable[[], None]) -> None:
        self.fire = fire
        self.live = True


class _Alarms:
    """The alarms of a fake clock, earliest first."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Alarm]] = []
        self._order = itertools.count()

    def add(self, at: float, fire: Callable[[], None]) -> _Alarm:
        alarm = _Alarm(fire)
        heapq.heappush(self._heap, (at, next(self._order), alarm))
        return alarm

    def next_due(self) -> float | None:
        """When the earliest live alarm is due; None if there is none."""
        while self._heap and not self._heap[0][2].live:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def fire_due(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            alarm = heapq.heappop(self._heap)[2]
            if alarm.live:
                alarm.live = False
                alarm.fire()

    @contextlib.contextmanager
    def deadline(self, now: float, seconds: float) -> Iterator[anyio.CancelScope]:
        """`Clock.move_on_after` on a fake clock whose time is `now`."""
        scope = anyio.CancelScope()
        alarm = None
        if seconds <= 0:
            scope.cancel()
        elif not math.isinf(seconds):
            alarm = self.add(now + seconds, scope.cancel)
        try:
            with scope:
                yield scope
        finally:
            if alarm is not None:
                alarm.live = False  # a deadline not reached must not pull time forward


class FakeClock:
    """A `Clock` that only moves when told to, or when something sleeps on it.

    `sleep()` advances the clock by the requested amount at once (then yields to
    the event loop), so code that waits an hour runs in microseconds. A
    `move_on_after` deadline cancels its scope once the clock reaches it, by
    `advance()` or by a sleep; code waiting on anything but the clock meanwhile
    waits until the test moves time.
    """

    def __init__(self, start: float = 0.0, epoch: datetime = _DEFAULT_EPOCH) -> None:
        self._now = start
        self._epoch = epoch - timedelta(seconds=start)
        self._alarms = _Alarms()

    def monotonic(self) -> float:
        return self._now

    def now(self) -> datetime:
        return self._epoch + timedelta(seconds=self._now)

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds` (never backwards)."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go backwards (asked to advance {seconds}s)")
        self._now += seconds
        self._alarms.fire_due(self._now)

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await anyio.lowlevel.checkpoint()

    def move_on_after(self, seconds: float) -> contextlib.AbstractContextManager[anyio.CancelScope]:
        return self._alarms.deadline(self._now, seconds)


class VirtualClock:
    """A `Clock` whose time jumps ahead whenever everything is waiting on it.

    `sleep()` really waits, but on virtual time: `drive()`, run as a task beside
    the code under test, lets every runnable task run (`idle_rounds` turns of the
    event loop), then moves time straight to the earliest pending deadline (of a
    sleep or a `move_on_after`; one nobody waits on any more does not count). An
    hour of polling runs in a fraction of a second, and what happens depends on
    the order of deadlines, not on how fast the machine is. Real I/O (loopback
    HTTP) completes within those turns; if a call ever takes longer, virtual time
    simply passes during it, as network latency would.
    """

    def __init__(
        self, start: float = 0.0, epoch: datetime = _DEFAULT_EPOCH, idle_rounds: int = 30
    ) -> None:
        self._now = start
        self._epoch = epoch - timedelta(seconds=start)
        self._idle_rounds = idle_rounds
        self._alarms = _Alarms()
        self._held = 0

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Time stands still while inside: for real I/O whose duration must not
        count, e.g. a delivery to a loopback receiver (see `TimelessSink`)."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1

    def monotonic(self) -> float:
        return self._now

    def now(self) -> datetime:
        return self._epoch + timedelta(seconds=self._now)

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds` at once, firing what falls due: a test that
        holds the clock (`held`) steps it itself, so that real I/O under way (a long
        poll of a queue) cannot let time run on to the next scheduled poll."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go backwards (asked to advance {seconds}s)")
        self._now += seconds
        self._alarms.fire_due(self._now)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        woken = anyio.Event()
        alarm = self._alarms.add(self._now + seconds, woken.set)
        try:
            await woken.wait()
        finally:
            alarm.live = False  # a cancelled sleep must not pull time forward

    def move_on_after(self, seconds: float) -> contextlib.AbstractContextManager[anyio.CancelScope]:
        return self._alarms.deadline(self._now, seconds)

    async def drive(self) -> None:
        """Advance time whenever the loop is idle; runs until cancelled.

        Time stands still while any worker thread is busy (the loop's default
        executor, which aiobotocore uses for TLS contexts, and anyio's threads,
        which the SQLite store uses): their work takes no virtual time. The loop
        counts as idle only after `idle_rounds` turns in a row with none busy, so a
        task a finished job wakes has run before time moves.
        """
        threads = _CountingExecutor()
        asyncio.get_running_loop().set_default_executor(threads)
        idle = 0
        try:
            while True:
                await anyio.lowlevel.checkpoint()
                if (
                    self._held
                    or threads.running
                    or anyio.to_thread.current_default_thread_limiter().borrowed_tokens
                ):
                    idle = 0  # real work (threads, I/O held) is under way
                    await anyio.sleep(0.001)
                    continue
                idle += 1
                if idle < self._idle_rounds:
                    continue
                idle = 0
                due = self._alarms.next_due()
                if due is None:  # nothing waits on time
                    await anyio.sleep(0.001)
                    continue
                self._now = max(self._now, due)
                self._alarms.fire_due(self._now)
        finally:
            threads.shutdown(wait=False)


class _CountingExecutor(ThreadPoolExecutor):
    """A thread pool that knows how many jobs it has not finished: a job counts as
    running until its result is on its way to the loop.

    A pool's future runs its done callbacks in the order they were added, and
    asyncio (`run_in_executor`) adds the one that hands the result to the loop after
    `submit` returns. A count released from a callback of the pool's own future went
    down before asyncio's had run; posting that release writes to the loop's
    self-pipe, which lets go of the GIL, so the loop ran on while the worker thread
    waited for the GIL and, on a loaded machine, for a CPU: `drive()` saw nothing
    running and moved time over and over (an hour in a few milliseconds) while
    aiobotocore awaited its TLS context. So the caller gets a future of its own,
    completed in the job's thread before the release is posted: asyncio's hand-over
    reaches the loop first. (A job done before asyncio subscribes is handed over at
    once, on the loop, as `submit` returns: before the awaiting task even yields.)
    The woken task then runs within the turns `drive()` waits after a release."""

    def __init__(self) -> None:
        super().__init__(thread_name_prefix="virtual-clock")
        self.running = 0
        self._count_lock = threading.Lock()
        self._loop = asyncio.get_running_loop()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        with self._count_lock:
            self.running += 1
        handed: Future[T] = Future()
        job = super().submit(fn, *args, **kwargs)
        # Cancelling the caller's future (asyncio does when the awaiting task is
        # cancelled) cancels the job if it has not started, as with a plain pool.
        handed.add_done_callback(lambda f: job.cancel() if f.cancelled() else None)
        job.add_done_callback(lambda done: self._hand_over(done, handed))
        return handed

    def _hand_over(self, job: Future[T], handed: Future[T]) -> None:
        """In the job's thread: complete the caller's future, whose done callbacks
        run here and now (asyncio's posts the result to the loop), then post the
        release behind them. The loop runs what is posted in order."""
        with contextlib.suppress(InvalidStateError):  # cancelled by the caller meanwhile
            if job.cancelled():
                handed.cancel()
            elif (error := job.exception()) is not None:
                handed.set_exception(error)
            else:
                handed.set_result(job.result())
        try:
            self._loop.call_soon_threadsafe(self._release)
        except RuntimeError:  # the loop is closed: nobody is left to count for
            self._release()

    def _release(self) -> None:
        with self._count_lock:
            self.running -= 1


class TimelessSink:
    """Wraps a sink so that, on a `VirtualClock`, its sends take no virtual time:
    the clock cannot jump past a backoff of another sink while this one is mid-POST."""

    def __init__(self, sink: Sink, clock: VirtualClock) -> None:
        self._sink = sink
        self._clock = clock

    async def send(self, event: Transition) -> None:
        with self._clock.held():
            await self._sink.send(event)


class RecordingSink:
    """A sink that keeps every event it is sent, in order."""

    def __init__(self) -> None:
        self.events: list[Transition] = []

    async def send(self, event: Transition) -> None:
        self.events.append(event)


class ScriptedSource:
    """An image source that answers each ARN from a script, one entry per call.

    An entry is an `ImageStatus`/status string (a snapshot of build 1 of the ARN's
    image), an `ImageSnapshot`, or an exception to raise. The last entry repeats.
    """

    def __init__(self, clock: Clock, scripts: Mapping[str, Sequence[ScriptEntry]]) -> None:
        self._clock = clock
        self._scripts = {arn: list(entries) for arn, entries in scripts.items()}
        self.calls: list[str] = []

    async def get(self, arn: str) -> ImageSnapshot:
        self.calls.append(arn)
        script = self._scripts.get(arn)
        if not script:
            raise NotFound(
                f"ResourceNotFoundException: no script for {arn}",
                code="ResourceNotFoundException",
                arn=arn,
            )
        entry = script.pop(0) if len(script) > 1 else script[0]
        await anyio.lowlevel.checkpoint()
        if isinstance(entry, BaseException):
            raise entry
        if isinstance(entry, ImageSnapshot):
            return entry.model_copy(update={"observed_at": self._clock.now()})
        parsed = Arn.parse(arn)
        build_arn = str(parsed) if parsed.is_build else f"{parsed}/1"
        return ImageSnapshot(
            arn=build_arn,
            status=ImageStatus(entry),
            name=parsed.name,
            version=parsed.version,
            build=parsed.build or 1,
            type="AMI",
            platform="Linux",
            observed_at=self._clock.now(),
        )
