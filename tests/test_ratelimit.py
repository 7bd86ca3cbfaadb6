from __future__ import annotations

import itertools

import anyio
import pytest

from watcher.ratelimit import URGENT_STREAK, CubicLimiter
from watcher.testing import FakeClock, VirtualClock


async def _acquire_concurrently(limiter: CubicLimiter, n: int) -> list[float]:
    """Start `n` tasks that call acquire() at once; tickets in the order tasks started."""
    tickets: list[float] = [0.0] * n

    async def one(i: int) -> None:
        tickets[i] = await limiter.acquire()

    async with anyio.create_task_group() as group:
        for i in range(n):
            group.start_soon(one, i)
    return tickets


async def _succeed_until(limiter: CubicLimiter, clock: FakeClock, until: float) -> None:
    """Send paced requests that all succeed until the clock reaches `until`."""
    while clock.monotonic() < until:
        limiter.on_success(await limiter.acquire())


async def test_the_first_request_is_not_delayed(clock: FakeClock) -> None:
    limiter = CubicLimiter(10, clock)

    assert await limiter.acquire() == 0.0


async def test_concurrent_waiters_are_spaced_one_over_rate_apart(clock: FakeClock) -> None:
    """200 workers at once against 10/s: one request every 0.1 s, ~20 s in all."""
    limiter = CubicLimiter(10, clock)

    tickets = sorted(await _acquire_concurrently(limiter, 200))

    gaps = [b - a for a, b in itertools.pairwise(tickets)]
    assert gaps == pytest.approx([0.1] * 199)
    assert clock.monotonic() == pytest.approx(19.9)


async def test_waiters_are_served_in_arrival_order(clock: FakeClock) -> None:
    limiter = CubicLimiter(10, clock)

    tickets = await _acquire_concurrently(limiter, 20)

    assert tickets == sorted(tickets)


async def test_a_throttle_halves_the_rate(clock: FakeClock) -> None:
    limiter = CubicLimiter(40, clock)

    limiter.on_throttle(await limiter.acquire())

    assert limiter.rate == pytest.approx(20)


async def test_a_halved_rate_spaces_requests_twice_as_far(clock: FakeClock) -> None:
    limiter = CubicLimiter(10, clock)
    limiter.on_throttle(await limiter.acquire())

    first = await limiter.acquire()
    second = await limiter.acquire()

    assert second - first == pytest.approx(0.2)


async def test_throttles_of_requests_sent_before_the_decrease_halve_only_once(
    clock: FakeClock,
) -> None:
    """50 requests in flight at the old rate all throttled: one congestion episode."""
    limiter = CubicLimiter(40, clock)
    in_flight = [await limiter.acquire() for _ in range(50)]

    for ticket in in_flight:
        limiter.on_throttle(ticket)

    assert limiter.rate == pytest.approx(20)


async def test_a_throttle_of_a_request_sent_after_the_decrease_halves_again(
    clock: FakeClock,
) -> None:
    limiter = CubicLimiter(40, clock)
    limiter.on_throttle(await limiter.acquire())

    limiter.on_throttle(await limiter.acquire())

    assert limiter.rate == pytest.approx(10)


async def test_successes_raise_the_rate(clock: FakeClock) -> None:
    limiter = CubicLimiter(50, clock, start_tps=5)

    await _succeed_until(limiter, clock, 5.0)

    assert limiter.rate > 5


async def test_successes_never_raise_the_rate_above_max_tps(clock: FakeClock) -> None:
    limiter = CubicLimiter(8, clock, start_tps=2)
    rates: list[float] = []

    while clock.monotonic() < 120:
        limiter.on_success(await limiter.acquire())
        rates.append(limiter.rate)

    assert max(rates) == 8
    assert limiter.rate == 8


async def test_throttles_never_lower_the_rate_below_min_tps(clock: FakeClock) -> None:
    limiter = CubicLimiter(40, clock, min_tps=0.5)

    for _ in range(20):
        limiter.on_throttle(await limiter.acquire())

    assert limiter.rate == 0.5


async def test_after_a_throttle_the_rate_recovers_to_90_percent_within_2_seconds(
    clock: FakeClock,
) -> None:
    limiter = CubicLimiter(100, clock, start_tps=40)
    limiter.on_throttle(await limiter.acquire())
    assert limiter.rate == pytest.approx(20)

    await _succeed_until(limiter, clock, 2.0)

    assert limiter.rate >= 0.9 * 40


async def test_after_recovering_the_rate_probes_slowly_above_the_throttled_rate(
    clock: FakeClock,
) -> None:
    """CUBIC's plateau: seconds after recovery the rate is still within 10% of it."""
    limiter = CubicLimiter(100, clock, start_tps=40)
    limiter.on_throttle(await limiter.acquire())

    await _succeed_until(limiter, clock, 5.0)

    assert 40 <= limiter.rate <= 44


@pytest.mark.parametrize(
    ("min_tps", "max_tps", "start_tps"),
    [(0, 10, None), (5, 4, None), (1, 10, 0.5), (1, 10, 11)],
)
def test_inconsistent_bounds_are_refused(
    clock: FakeClock, min_tps: float, max_tps: float, start_tps: float | None
) -> None:
    with pytest.raises(ValueError, match="tps"):
        CubicLimiter(max_tps, clock, min_tps=min_tps, start_tps=start_tps)


class _ServerBucket:
    """The server's side: `rate` requests/s, `burst` at once; refuses the rest."""

    def __init__(self, rate: float, burst: float, clock: FakeClock) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._updated = clock.monotonic()

    def take(self) -> bool:
        now = self._clock.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


@pytest.mark.parametrize(
    "burst",
    [
        pytest.param(1.0, id="server-without-burst"),
        pytest.param(20.0, id="server-with-one-second-burst"),
    ],
)
async def test_fifty_workers_get_close_to_the_server_limit_and_are_rarely_throttled(
    clock: FakeClock, burst: float
) -> None:
    """50 workers hammer a 20/s server through a limiter allowing 50/s, for 300 s."""
    server_rate, duration, warm_up = 20.0, 300.0, 30.0
    limiter = CubicLimiter(50, clock)
    server = _ServerBucket(server_rate, burst, clock)
    succeeded: list[float] = []
    throttled: list[float] = []

    async def worker() -> None:
        while (ticket := await limiter.acquire()) < duration:
            if server.take():
                succeeded.append(ticket)
                limiter.on_success(ticket)
            else:
                throttled.append(ticket)
                limiter.on_throttle(ticket)

    async with anyio.create_task_group() as group:
        for _ in range(50):
            group.start_soon(worker)

    throttled_fraction = len(throttled) / (len(succeeded) + len(throttled))
    goodput = sum(1 for t in succeeded if t >= warm_up) / (duration - warm_up)
    assert throttled_fraction < 0.05
    assert goodput >= 0.85 * server_rate


async def test_an_urgent_request_goes_before_the_waiters_that_are_not() -> None:
    """20 ordinary requests queue at 10/s; an urgent one asked for at 0.35 s is sent
    with the next token, at 0.4 s, and the ordinary ones keep their order after it.
    On virtual time, which moves only when every task waits on it."""
    clock = VirtualClock()
    limiter = CubicLimiter(10, clock)
    sent: list[tuple[str, float]] = []

    async def ordinary(n: int) -> None:
        sent.append((f"ordinary {n}", await limiter.acquire()))

    async def urgent() -> None:
        await clock.sleep(0.35)
        assert limiter.queued
        sent.append(("urgent", await limiter.acquire(urgent=True)))

    async with anyio.create_task_group() as driving:
        driving.start_soon(clock.drive)
        async with anyio.create_task_group() as group:
            for n in range(20):
                group.start_soon(ordinary, n)
            group.start_soon(urgent)
        driving.cancel_scope.cancel()
    order = [name for name, _ in sorted(sent, key=lambda entry: entry[1])]
    assert order.index("urgent") == 4, order  # after those sent at 0, 0.1, 0.2, 0.3 s
    assert dict(sent)["urgent"] == pytest.approx(0.4)
    assert [name for name in order if name != "urgent"] == [f"ordinary {n}" for n in range(20)]
    tickets = sorted(ticket for _, ticket in sent)
    assert [b - a for a, b in itertools.pairwise(tickets)] == pytest.approx([0.1] * 20)


async def test_urgent_requests_are_served_in_arrival_order_among_themselves(
    clock: FakeClock,
) -> None:
    limiter = CubicLimiter(10, clock)
    await limiter.acquire()  # the bucket's token: everyone after waits
    order: list[str] = []

    async def one(name: str, urgent: bool) -> None:
        await limiter.acquire(urgent=urgent)
        order.append(name)

    async with anyio.create_task_group() as group:
        for n in range(3):
            group.start_soon(one, f"ordinary {n}", False)
        for n in range(3):
            group.start_soon(one, f"urgent {n}", True)
    assert order[:3] == ["urgent 0", "urgent 1", "urgent 2"]
    assert order[3:] == ["ordinary 0", "ordinary 1", "ordinary 2"]


async def test_a_burst_of_urgent_requests_lets_one_ordinary_through_every_streak() -> None:
    """A thousand events at once must not stop the scheduled polls: after
    URGENT_STREAK urgent requests in a row, the next token goes to the ordinary
    waiter at the head of its queue."""
    clock = VirtualClock()
    limiter = CubicLimiter(10, clock)
    order: list[str] = []

    async def one(kind: str) -> None:
        await limiter.acquire(urgent=kind == "urgent")
        order.append(kind)

    async with anyio.create_task_group() as driving:
        driving.start_soon(clock.drive)
        await limiter.acquire()  # the bucket's token: everyone after waits
        async with anyio.create_task_group() as group:
            for _ in range(3):
                group.start_soon(one, "ordinary")
            for _ in range(2 * URGENT_STREAK + 5):
                group.start_soon(one, "urgent")
        driving.cancel_scope.cancel()
    streak = ["urgent"] * URGENT_STREAK
    assert order == [*streak, "ordinary", *streak, "ordinary", *["urgent"] * 5, "ordinary"]
