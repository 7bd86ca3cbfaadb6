"""`Clock.move_on_after`: a deadline on the clock's own time, for every clock."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import pytest

from watcher.clock import Clock, SystemClock
from watcher.testing import FakeClock, VirtualClock

CLOCKS: dict[str, Callable[[], Clock]] = {
    "system": SystemClock,
    "fake": FakeClock,
    "virtual": VirtualClock,
}


@asynccontextmanager
async def ticking(clock: Clock) -> AsyncIterator[None]:
    """Run the clock's driver, if it needs one, while inside."""
    async with anyio.create_task_group() as group:
        if isinstance(clock, VirtualClock):
            group.start_soon(clock.drive)
        yield
        group.cancel_scope.cancel()


@pytest.fixture(params=list(CLOCKS))
def any_clock(request: pytest.FixtureRequest) -> Clock:
    return CLOCKS[request.param]()


async def test_a_body_that_ends_first_is_not_cancelled(any_clock: Clock) -> None:
    async with ticking(any_clock):
        with any_clock.move_on_after(3600) as scope:
            await anyio.lowlevel.checkpoint()
            finished = True
    assert finished
    assert not scope.cancelled_caught


async def test_a_body_that_outlasts_the_deadline_is_cut_short(any_clock: Clock) -> None:
    reached: list[str] = []
    # Real seconds for the real clock, so a short deadline; the fakes' are free.
    deadline = 0.01 if isinstance(any_clock, SystemClock) else 10
    async with ticking(any_clock):
        with any_clock.move_on_after(deadline) as scope:
            await any_clock.sleep(3600)
            reached.append("past the sleep")
    assert scope.cancelled_caught
    assert reached == []


async def test_an_error_in_the_body_is_raised_as_itself(any_clock: Clock) -> None:
    """No task group in between: a caller catches the error it knows, not a group."""

    async def fails_after_a_checkpoint() -> None:
        with any_clock.move_on_after(3600):
            await anyio.lowlevel.checkpoint()
            raise KeyError("bug")

    async with ticking(any_clock):
        with pytest.raises(KeyError):
            await fails_after_a_checkpoint()


async def test_a_deadline_already_past_cancels_at_the_first_checkpoint(any_clock: Clock) -> None:
    async with ticking(any_clock):
        with any_clock.move_on_after(0) as scope:
            await anyio.lowlevel.checkpoint()
            pytest.fail("the body went on past a checkpoint")
    assert scope.cancelled_caught


async def test_infinity_means_no_deadline(any_clock: Clock) -> None:
    async with ticking(any_clock):
        with any_clock.move_on_after(math.inf) as scope:
            await any_clock.sleep(0.001)
    assert not scope.cancelled_caught


async def test_on_virtual_time_the_deadline_ends_the_wait_exactly_when_due() -> None:
    clock = VirtualClock()
    async with ticking(clock):
        with clock.move_on_after(30):
            await anyio.Event().wait()  # nothing but the deadline can end this
        ended_at = clock.monotonic()
    assert ended_at == 30


async def test_on_virtual_time_the_earlier_of_a_sleep_and_a_deadline_wins() -> None:
    clock = VirtualClock()
    async with ticking(clock):
        with clock.move_on_after(30) as scope:
            await clock.sleep(20)
        assert clock.monotonic() == 20
        assert not scope.cancelled_caught
        with clock.move_on_after(30) as scope:
            await clock.sleep(45)
        assert clock.monotonic() == 50
        assert scope.cancelled_caught


async def test_on_a_fake_clock_advancing_past_the_deadline_cancels() -> None:
    clock = FakeClock()
    gate = anyio.Event()
    async with anyio.create_task_group() as group:

        async def move_time_once_waiting() -> None:
            await gate.wait()
            clock.advance(5)
            clock.advance(5)

        group.start_soon(move_time_once_waiting)
        with clock.move_on_after(10) as scope:
            gate.set()
            await anyio.Event().wait()
    assert scope.cancelled_caught
    assert clock.monotonic() == 10
