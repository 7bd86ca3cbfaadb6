"""The leader's lease, in-process on a real PostgreSQL: it lasts `failover` less one
heartbeat from when the last heartbeat was sent, and once it has run out the
dispatcher sends nothing, not even a delivery it already held in memory. The
leader's clock is a `VirtualClock` the test moves by hand, as a pause would."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from tests.ha.leaders import replica, until
from watcher.delivery import Dispatcher, Route
from watcher.leadership import LeaseExpired
from watcher.model import ImageSnapshot, Transition
from watcher.store import SqliteStore
from watcher.testing import VirtualClock
from watcher.tracker import Tracked, observe

FAILOVER = 5.0
HEARTBEAT = FAILOVER / 5
ARN = "arn:aws:imagebuilder:us-east-1:123456789012:image/leased/1.0.0/1"


class PausedAfterFirstSend:
    """A sink whose process is paused (its clock jumps `seconds`) right after the
    receiver acknowledged the first event."""

    def __init__(self, clock: VirtualClock, seconds: float) -> None:
        self.clock = clock
        self.seconds = seconds
        self.sent: list[str] = []

    async def send(self, event: Transition) -> None:
        self.sent.append(event.id)
        if len(self.sent) == 1:
            self.clock.advance(self.seconds)


def transitions() -> tuple[Tracked, list[Transition]]:
    """Two events of one build, both to be delivered, and what is tracked after."""
    events: list[Transition] = []
    tracked: Tracked | None = None
    for minute, status in enumerate(["BUILDING", "TESTING"]):
        snapshot = ImageSnapshot.model_validate(
            {
                "arn": ARN,
                "name": "leased",
                "version": "1.0.0",
                "build": 1,
                "status": status,
                "observed_at": datetime(2026, 1, 1, 0, minute, tzinfo=UTC),
            }
        )
        tracked, new = observe(ARN, tracked, snapshot)
        events += new
    assert tracked is not None
    return tracked, events


async def test_the_lease_lasts_failover_less_one_heartbeat_from_the_send(
    postgres_url: str,
) -> None:
    clock = VirtualClock()  # never driven: time moves only when the test says
    async with replica(postgres_url, clock, FAILOVER) as leader:
        with pytest.raises(LeaseExpired):
            leader.leadership.check_lease()  # a standby may not act
        async with anyio.create_task_group() as group:
            group.start_soon(leader.leadership.run, leader.lead)
            await until(lambda: leader.leadership.role == "leader")
            # No await from here on: no heartbeat can run and extend the lease.
            clock.advance(FAILOVER - HEARTBEAT - 0.01)
            leader.leadership.check_lease()
            clock.advance(0.02)
            with pytest.raises(LeaseExpired, match="lease ran out"):
                leader.leadership.check_lease()
            group.cancel_scope.cancel()


async def test_a_leader_paused_past_its_lease_does_not_send_what_it_held(
    postgres_url: str,
) -> None:
    """Both deliveries are read in one batch; the process pauses for a failover just
    after the first is acknowledged. Resumed, it steps down: the second, in memory,
    is not sent (the next leader sends it)."""
    clock = VirtualClock()
    tracked, events = transitions()
    async with replica(postgres_url, clock, FAILOVER) as leader:
        sink = PausedAfterFirstSend(clock, FAILOVER)
        dispatcher = Dispatcher(
            store=leader.store,
            routes=[Route("hook", sink, lambda _event: True)],
            clock=clock,
            rng=random.Random(1),
            lease=leader.leadership.check_lease,
        )

        async def lead() -> None:
            leader.terms += 1
            await leader.store.commit(ARN, tracked, events, {e.id: ["hook"] for e in events})
            await dispatcher.run()

        async with anyio.create_task_group() as group:
            group.start_soon(leader.leadership.run, lead)
            await until(lambda: leader.terms == 1 and leader.leadership.role == "standby")
            group.cancel_scope.cancel()
        pending = await leader.store.pending("hook")
    assert sink.sent == [events[0].id]
    # The first may be sent again too (its removal may not have been committed before
    # the term ended): the same id, at least once, as after any crash.
    assert events[1].id in [d.event.id for d in pending], "left for the next leader"


class Revoking:
    """A sink that acknowledges an event, and with it revokes the lease: as if the
    process paused right after, and found the lease run out when it resumed."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.lease_ran_out = False

    def check(self) -> None:
        if self.lease_ran_out:
            raise LeaseExpired("this replica's lease ran out")

    async def send(self, event: Transition) -> None:
        self.sent.append(event.id)
        self.lease_ran_out = True


async def test_the_dispatcher_asks_the_lease_before_each_send_and_stops_at_a_refusal(
    tmp_path: Path,
) -> None:
    tracked, events = transitions()
    store = await SqliteStore.open(tmp_path / "state.db")
    try:
        await store.commit(ARN, tracked, events, {e.id: ["hook"] for e in events})
        sink = Revoking()
        dispatcher = Dispatcher(
            store=store,
            routes=[Route("hook", sink, lambda _event: True)],
            clock=VirtualClock(),
            lease=sink.check,
        )
        with pytest.raises(ExceptionGroup) as ended, anyio.fail_after(10):
            await dispatcher.run()  # without the check: both sent, then idle for ever
        pending = await store.pending("hook")
    finally:
        await store.close()
    assert ended.group_contains(LeaseExpired)
    assert sink.sent == [events[0].id], "the second, read in the same batch, was not sent"
    assert [d.event.id for d in pending] == [events[1].id]
