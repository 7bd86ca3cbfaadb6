"""Delivering committed events from the outbox to the sinks.

One loop per sink, so a slow or failing receiver never delays another. Each loop
sends its sink's deliveries oldest first (per-build order is kept) and removes a
row only once the receiver acknowledged it. A failure is judged by the
`DeliveryPolicy`: try again later (full-jitter backoff, or as long as Retry-After
says, capped), dead-letter it (a permanent refusal, or older than `max_age`), or
disable the sink (410 Gone). Backoff times are stored, so they survive restarts.
With replicas (`watcher.leadership`), the leadership's lease is asked right before
each send: a leader paused past it sends nothing it held, it steps down instead.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import anyio
import structlog
from anyio.abc import TaskGroup

from watcher.backoff import full_jitter
from watcher.clock import Clock
from watcher.metrics import DeliveryOutcome, Metrics
from watcher.model import Transition
from watcher.sinks.base import DeliveryError, Sink
from watcher.store.base import Delivery, Store

log = structlog.get_logger("ibwatch")


@dataclass(frozen=True)
class DeliveryPolicy:
    base: float = 1.0
    """First retry waits up to this long; each further one up to twice as long."""
    cap: float = 300.0
    """No backoff wait is longer than this."""
    retry_after_cap: float = 3600.0
    """A receiver's Retry-After is honoured up to this long."""
    max_age: float = 86400.0
    """A delivery still failing this long after its event is dead-lettered."""

    def retry_in(self, attempts: int, error: DeliveryError, rng: random.Random) -> float:
        """Seconds to wait before attempt number `attempts + 1`."""
        if error.retry_after is not None:
            return min(error.retry_after, self.retry_after_cap)
        return full_jitter(max(1, attempts), base=self.base, cap=self.cap, rng=rng)


@dataclass(frozen=True)
class Route:
    """A sink and which events it wants."""

    name: str
    sink: Sink
    wants: Callable[[Transition], bool]


class RateLimitedSink:
    """Paces a sink to at most `rate` messages per second, so a burst of events
    queues here instead of getting the sink throttled or disabled by its platform."""

    def __init__(self, sink: Sink, rate: float, clock: Clock) -> None:
        self._sink = sink
        self._interval = 1.0 / rate
        self._clock = clock
        self._next = -float("inf")

    async def send(self, event: Transition) -> None:
        wait = self._next - self._clock.monotonic()
        if wait > 0:
            await self._clock.sleep(wait)
        self._next = self._clock.monotonic() + self._interval
        await self._sink.send(event)


class Dispatcher:
    def __init__(
        self,
        *,
        store: Store,
        routes: Sequence[Route],
        clock: Clock,
        policy: DeliveryPolicy | None = None,
        rng: random.Random | None = None,
        recheck: float = 30.0,
        metrics: Metrics | None = None,
        lease: Callable[[], None] | None = None,
    ) -> None:
        """`lease`: raises when this replica may no longer act (the leadership's
        `check_lease`); what it raises ends `run()`. None: always may."""
        self._store = store
        self._lease = lease
        self._recheck = recheck
        self._routes = {route.name: route for route in routes}
        self._clock = clock
        self._policy = policy or DeliveryPolicy()
        self._random = rng or random.Random()
        self._wakeups: dict[str, anyio.Event] = {name: anyio.Event() for name in self._routes}
        self.disabled: dict[str, str] = {}
        """Sinks switched off by a 410 Gone, with why."""
        self._moved = anyio.Event()
        self._metrics = metrics
        if metrics is not None:
            metrics.count_deliveries_to(self._routes)
        self._group: TaskGroup | None = None
        self._loops: dict[str, anyio.CancelScope] = {}

    def route(self, event: Transition) -> list[str]:
        """The names of the sinks that want `event`."""
        return [name for name, route in self._routes.items() if route.wants(event)]

    def routes_for(self, events: Sequence[Transition]) -> Mapping[str, Sequence[str]]:
        return {event.id: self.route(event) for event in events}

    def wake(self) -> None:
        """New rows were committed: idle sink loops look again."""
        for event in self._wakeups.values():
            event.set()

    async def drained(self) -> None:
        """Return once no enabled sink has anything left to deliver."""
        while True:
            moved = self._moved = anyio.Event()
            waiting = [
                name
                for name in self._routes
                if name not in self.disabled and await self._store.pending(name, limit=1)
            ]
            if not waiting:
                return
            await moved.wait()

    @property
    def sinks(self) -> list[str]:
        return list(self._routes)

    async def run(self) -> None:
        """Deliver until cancelled; one loop per sink."""
        async with anyio.create_task_group() as group:
            self._group = group
            for name in self._routes:
                self._start_loop(name)
        self._group = None

    def set_routes(self, routes: Sequence[Route]) -> tuple[list[str], list[str]]:
        """Deliver to exactly these sinks from now on (a config reload). A removed
        sink's loop stops and its undelivered rows stay in the store; an added one
        starts with whatever rows it has. Returns (added, removed)."""
        new = {route.name: route for route in routes}
        added = [name for name in new if name not in self._routes]
        removed = [name for name in self._routes if name not in new]
        for name in removed:
            scope = self._loops.pop(name, None)
            if scope is not None:
                scope.cancel()
            self._wakeups.pop(name, None)
            self.disabled.pop(name, None)
        self._routes = new
        if self._metrics is not None:
            self._metrics.count_deliveries_to(added)
        for name in added:
            self._wakeups[name] = anyio.Event()
            if self._group is not None:
                self._start_loop(name)
        return added, removed

    def _start_loop(self, name: str) -> None:
        assert self._group is not None
        scope = self._loops[name] = anyio.CancelScope()

        async def loop() -> None:
            with scope:
                await self._serve(name)

        self._group.start_soon(loop, name=f"deliver to {name}")

    async def _serve(self, name: str) -> None:
        while name not in self.disabled and name in self._routes:
            route = self._routes[name]
            # A fresh event before looking, so a commit made meanwhile is not missed.
            woken = self._wakeups[name] = anyio.Event()
            batch = await self._store.pending(name)
            if not batch:
                await self._idle(woken)
                continue
            for delivery in batch:
                if not await self._deliver(route, delivery):
                    break  # the oldest is waiting for a retry; nothing overtakes it

    async def _idle(self, woken: anyio.Event) -> None:
        """Wait for a commit, or look again after `recheck` seconds: rows can also
        arrive from another process (`ibwatch deliveries replay`)."""
        with self._clock.move_on_after(self._recheck):
            await woken.wait()

    async def _deliver(self, route: Route, delivery: Delivery) -> bool:
        """One attempt at `delivery`; True when the loop may go on to the next row."""
        wait = delivery.next_attempt_at - self._now()
        if wait > 0:
            await self._clock.sleep(wait)
        if self._lease is not None:
            # After every wait, right before the send: outside the `try` below, so
            # that it ends the loop instead of counting as a failed attempt.
            self._lease()
        try:
            await route.sink.send(delivery.event)
        except DeliveryError as error:
            return await self._failed(route.name, delivery, error)
        except Exception as exc:  # a bug in a sink: keep the row, try again later
            unexpected = DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True)
            return await self._failed(route.name, delivery, unexpected)
        await self._store.delivered(delivery.seq)
        self._moved.set()
        self._count(route.name, "delivered")
        log.debug(
            "delivery.done",
            sink=route.name,
            event_id=delivery.event.id,
            attempts=delivery.attempts + 1,
        )
        return True

    async def _failed(self, name: str, delivery: Delivery, error: DeliveryError) -> bool:
        now = self._now()
        attempts = delivery.attempts + 1
        fields = {
            "sink": name,
            "event_id": delivery.event.id,
            "attempts": attempts,
            "error": str(error),
        }
        self._count(name, "gone" if error.gone else "retryable" if error.retryable else "refused")
        if error.gone:
            self.disabled[name] = str(error)
            await self._store.retry_later(delivery.seq, attempts, now, str(error))
            self._moved.set()
            log.error(
                "sink.disabled",
                **fields,
                message=f"sink {name!r} answered 410 Gone: it is disabled and its "
                "undelivered events are kept; fix its URL and restart to resume",
            )
            return False
        if not error.retryable:
            await self._store.bury(delivery.seq, str(error), now)
            self._moved.set()
            log.error("delivery.dead_letter", **fields, why="refused by the receiver")
            return True
        if now - delivery.created_at >= self._policy.max_age:
            reason = f"still failing after {self._policy.max_age:g}s: {error}"
            await self._store.bury(delivery.seq, reason, now)
            self._moved.set()
            log.error("delivery.dead_letter", **fields, why="too old")
            return True
        delay = self._policy.retry_in(attempts, error, self._random)
        await self._store.retry_later(delivery.seq, attempts, now + delay, str(error))
        log.warning("delivery.retrying", **fields, retry_in_s=round(delay, 3))
        return False

    def _count(self, sink: str, outcome: DeliveryOutcome) -> None:
        if self._metrics is not None:
            self._metrics.deliveries.labels(sink, outcome).inc()

    def _now(self) -> float:
        return self._clock.now().timestamp()
