"""The outbox dispatcher against real receivers on loopback, on virtual time."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from tests.delivery.receiver import HANG, receiving
from watcher.delivery import DeliveryPolicy, Dispatcher, RateLimitedSink, Route
from watcher.model import ImageSnapshot, ImageStatus, Transition
from watcher.sinks.base import Sink
from watcher.sinks.http import HttpPoster
from watcher.sinks.webhook import WebhookSink
from watcher.store import SqliteStore, Store
from watcher.testing import TimelessSink, VirtualClock
from watcher.tracker import Tracked, observe

ARN = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0/7"


def transitions(*statuses: str) -> tuple[Tracked, list[Transition]]:
    tracked: Tracked | None = None
    events: list[Transition] = []
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for minute, status in enumerate(statuses):
        snapshot = ImageSnapshot(
            arn=ARN,
            status=ImageStatus(status),
            name="web-base",
            version="1.4.0",
            build=7,
            created=start,
            observed_at=start + timedelta(minutes=minute),
        )
        tracked, new = observe(ARN, tracked, snapshot)
        events += new
    assert tracked is not None
    return tracked, events


@asynccontextmanager
async def dispatching(
    clock: VirtualClock,
    store: Store,
    sinks: dict[str, Sink],
    policy: DeliveryPolicy | None = None,
) -> AsyncIterator[Dispatcher]:
    routes = [Route(name, sink, lambda _e: True) for name, sink in sinks.items()]
    dispatcher = Dispatcher(
        store=store, routes=routes, clock=clock, policy=policy, rng=random.Random(3)
    )
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        group.start_soon(dispatcher.run)
        yield dispatcher
        group.cancel_scope.cancel()


async def commit(
    store: Store,
    dispatcher: Dispatcher | None,
    names: Sequence[str],
    *statuses: str,
    now: float = 0.0,
) -> list[Transition]:
    tracked, events = transitions(*statuses)
    await store.commit(ARN, tracked, events, {e.id: list(names) for e in events}, now=now)
    if dispatcher is not None:
        dispatcher.wake()
    return events


def hook(url: str, poster: HttpPoster, clock: VirtualClock, **options: float) -> Sink:
    """A webhook sink whose POSTs hold virtual time still: a request on loopback
    must not let the clock jump over another sink's backoff."""
    return TimelessSink(WebhookSink(url=url, poster=poster, clock=clock, **options), clock)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(tmp_path / "state.db")
    yield opened
    await opened.close()


async def test_500_three_times_then_200_is_acknowledged_once_with_one_webhook_id(
    store: SqliteStore,
) -> None:
    clock = VirtualClock(epoch=datetime(2026, 1, 1, tzinfo=UTC))
    async with (
        receiving(clock, (500, {}), (500, {}), (500, {})) as receiver,
        HttpPoster() as poster,
    ):
        sink = hook(receiver.url, poster, clock)
        async with dispatching(clock, store, {"hook": sink}) as dispatcher:
            [event] = await commit(
                store, dispatcher, ["hook"], "BUILDING", now=clock.now().timestamp()
            )
            await receiver.until(4)
            await dispatcher.drained()
    assert {a.headers["webhook-id"] for a in receiver.arrivals} == {event.id}
    assert len(receiver.arrivals) == 4
    assert await store.pending("hook") == []
    assert await store.dead_letters() == []


async def test_429_with_retry_after_is_not_called_again_before_it(store: SqliteStore) -> None:
    clock = VirtualClock(epoch=datetime(2026, 1, 1, tzinfo=UTC))
    async with receiving(clock, (429, {"Retry-After": "2"})) as receiver, HttpPoster() as poster:
        sink = hook(receiver.url, poster, clock)
        async with dispatching(clock, store, {"hook": sink}) as dispatcher:
            await commit(store, dispatcher, ["hook"], "BUILDING", now=clock.now().timestamp())
            await receiver.until(2)
    first, second = receiver.arrivals
    assert second.at - first.at >= 2.0
    assert second.at - first.at < 2.5, "and not much later either"


async def test_400_is_not_retried_and_becomes_a_dead_letter(store: SqliteStore) -> None:
    clock = VirtualClock(epoch=datetime(2026, 1, 1, tzinfo=UTC))
    async with receiving(clock, (400, {})) as receiver, HttpPoster() as poster:
        sink = hook(receiver.url, poster, clock)
        async with dispatching(clock, store, {"hook": sink}) as dispatcher:
            await commit(
                store, dispatcher, ["hook"], "BUILDING", "TESTING", now=clock.now().timestamp()
            )
            await dispatcher.drained()
    assert len(receiver.arrivals) == 2, "the refused one once, then the next event"
    [dead] = await store.dead_letters("hook")
    assert (dead.event.current.status, dead.attempts, dead.reason) == (
        "BUILDING",
        0,
        "HTTP 400: nope",
    )


async def test_410_disables_the_sink_and_keeps_its_events(store: SqliteStore) -> None:
    clock = VirtualClock(epoch=datetime(2026, 1, 1, tzinfo=UTC))
    async with receiving(clock, (410, {})) as receiver, HttpPoster() as poster:
        sink = hook(receiver.url, poster, clock)
        async with dispatching(clock, store, {"hook": sink}) as dispatcher:
            await commit(
                store, dispatcher, ["hook"], "BUILDING", "TESTING", now=clock.now().timestamp()
            )
            await dispatcher.drained()
            assert "hook" in dispatcher.disabled
    assert len(receiver.arrivals) == 1
    assert len(await store.pending("hook")) == 2, "nothing is lost: the events wait"


async def test_a_hanging_receiver_hits_the_timeout_and_is_retried(store: SqliteStore) -> None:
    clock = VirtualClock(epoch=datetime(2026, 1, 1, tzinfo=UTC))
    async with receiving(clock, HANG) as receiver, HttpPoster() as poster:
        sink = hook(receiver.url, poster, clock, timeout_s=0.3)
        async with dispatching(clock, store, {"hook": sink}) as dispatcher:
            [event] = await commit(
                store, dispatcher, ["hook"], "BUILDING", now=clock.now().timestamp()
            )
            await receiver.until(2)
            await dispatcher.drained()
    assert [a.headers["webhook-id"] for a in receiver.arrivals] == [event.id, event.id]
    assert await store.pending("hook") == []


async def test_a_failing_sink_never_delays_another(store: SqliteStore) -> None:
    clock = VirtualClock(epoch=datetime(2026, 1, 1, tzinfo=UTC))
    failing = [(503, {"Retry-After": "3600"})] * 5
    async with receiving(clock, *failing) as down, receiving(clock) as up, HttpPoster() as poster:
        sinks = {
            "down": hook(down.url, poster, clock),
            "up": hook(up.url, poster, clock),
        }
        async with dispatching(clock, store, sinks) as dispatcher:
            await commit(
                store,
                dispatcher,
                ["down", "up"],
                "BUILDING",
                "TESTING",
                "AVAILABLE",
                now=clock.now().timestamp(),
            )
            await up.until(3)
            delivered_at = [a.at for a in up.arrivals]
    assert delivered_at == [0.0, 0.0, 0.0]
    assert len(down.arrivals) == 1, "the down sink waits an hour, alone"


async def test_rate_limit_paces_a_burst_instead_of_dropping_it(store: SqliteStore) -> None:
    clock = VirtualClock(epoch=datetime(2026, 1, 1, tzinfo=UTC))
    async with receiving(clock) as receiver, HttpPoster() as poster:
        sink = RateLimitedSink(hook(receiver.url, poster, clock), 1.0, clock)
        async with dispatching(clock, store, {"chat": sink}) as dispatcher:
            await commit(
                store,
                dispatcher,
                ["chat"],
                "PENDING",
                "BUILDING",
                "TESTING",
                "DISTRIBUTING",
                "AVAILABLE",
                now=clock.now().timestamp(),
            )
            await receiver.until(5)
    gaps = [b.at - a.at for a, b in zip(receiver.arrivals, receiver.arrivals[1:], strict=False)]
    assert all(gap >= 1.0 for gap in gaps)
    statuses = [a.json["data"]["current"]["status"] for a in receiver.arrivals]
    assert statuses == ["PENDING", "BUILDING", "TESTING", "DISTRIBUTING", "AVAILABLE"]


async def test_a_delivery_failing_past_its_max_age_is_a_dead_letter_that_can_be_replayed(
    store: SqliteStore,
) -> None:
    clock = VirtualClock(epoch=datetime(2026, 1, 1, tzinfo=UTC))
    policy = DeliveryPolicy(base=60, cap=600, max_age=3600)
    async with receiving(clock, *[(503, {})] * 100) as receiver, HttpPoster() as poster:
        sink = hook(receiver.url, poster, clock)
        async with dispatching(clock, store, {"hook": sink}, policy) as dispatcher:
            await commit(store, dispatcher, ["hook"], "BUILDING", now=clock.now().timestamp())
            await dispatcher.drained()
            [dead] = await store.dead_letters()
            assert dead.reason.startswith("still failing after 3600s: HTTP 503")
            assert clock.monotonic() >= 3600
            receiver.script.clear()
            assert await store.replay(None, "hook", clock.now().timestamp()) == 1
            dispatcher.wake()
            await dispatcher.drained()
    assert await store.dead_letters() == []
    assert receiver.arrivals[-1].json["data"]["id"] == dead.event.id
