"""The lease reaches every API call a term makes, not only its scheduled polls:
`Engine.call` (discovery's lists, a push event's poll) asks it before each attempt,
and the push consumer lets a lapsed lease end the term rather than log it away."""

from __future__ import annotations

import random
from typing import Any

import anyio
import pytest

from watcher.engine import Engine, Schedule
from watcher.errors import Unavailable
from watcher.leadership import LeaseExpired
from watcher.push import PushConsumer
from watcher.ratelimit import CubicLimiter
from watcher.retry import RetryPolicy
from watcher.store import MemoryStore
from watcher.testing import VirtualClock


class Lease:
    """Valid until `lapse()`: what `Leadership.check_lease` is to the engine."""

    def __init__(self) -> None:
        self.valid = True
        self.asked = 0

    def __call__(self) -> None:
        self.asked += 1
        if not self.valid:
            raise LeaseExpired("no heartbeat got through for 12s")


def engine_with(lease: Lease, clock: VirtualClock) -> Engine:
    return Engine(
        source=None,  # type: ignore[arg-type]  # `call` never reads it
        store=MemoryStore(),
        clock=clock,
        limiter=CubicLimiter(100, clock),
        schedule=Schedule(interval_for=lambda _: 10.0),
        retry=RetryPolicy(attempts=3, base=1, cap=5),
        rng=random.Random(1),
        lease=lease,
    )


async def test_a_call_is_not_made_once_the_lease_has_lapsed() -> None:
    clock = VirtualClock()
    lease = Lease()
    engine = engine_with(lease, clock)
    made: list[str] = []

    async def list_pipelines() -> str:
        made.append("ListImagePipelines")
        return "page"

    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)  # the limiter waits on the virtual clock
        assert await engine.call(list_pipelines) == "page"
        lease.valid = False
        with pytest.raises(LeaseExpired):
            await engine.call(list_pipelines)
        group.cancel_scope.cancel()
    assert made == ["ListImagePipelines"], "the call after the lapse was made"


async def test_a_retry_after_the_lease_lapsed_is_not_made() -> None:
    """The lease is asked before each attempt: a backoff may outlast it."""
    clock = VirtualClock()
    lease = Lease()
    engine = engine_with(lease, clock)
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        lease.valid = False  # lapses during the first attempt's backoff
        raise Unavailable("try again", code="ServiceUnavailableException")

    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        with pytest.raises(LeaseExpired):
            await engine.call(flaky)
        group.cancel_scope.cancel()
    assert attempts == 1
    assert lease.asked == 2


async def test_a_lapsed_lease_in_a_push_event_ends_the_term() -> None:
    """`_handle_safely` keeps one bad message from ending the daemon, but a lease that
    ran out must end the term, as a fenced write does."""

    async def handle(message: dict[str, Any], received_at: int) -> None:
        raise LeaseExpired("no heartbeat got through for 12s")

    consumer = PushConsumer.__new__(PushConsumer)  # only its message handling is used
    consumer._handle = handle  # type: ignore[method-assign]
    with pytest.raises(LeaseExpired):
        await consumer._handle_safely({"MessageId": "m-1"}, 0)
