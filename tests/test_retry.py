from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import pytest

from watcher.backoff import full_jitter
from watcher.errors import ApiError, NotFound, Throttled, Unavailable
from watcher.ratelimit import CubicLimiter
from watcher.retry import RetryPolicy, call_with_retry
from watcher.testing import FakeClock


class _SleepRecordingClock(FakeClock):
    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await super().sleep(seconds)


class _Scripted:
    """An API call that raises the scripted errors in turn, then returns "image"."""

    def __init__(self, errors: Iterable[Exception]) -> None:
        self._errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self._errors:
            raise self._errors.pop(0)
        return "image"


@pytest.fixture
def limiter() -> CubicLimiter:
    # Its own clock, so that `clock` only moves by the retry waits.
    return CubicLimiter(64, FakeClock())


async def _call(
    fn: Callable[[], Awaitable[str]],
    limiter: CubicLimiter,
    clock: FakeClock,
    policy: RetryPolicy | None = None,
) -> str:
    return await call_with_retry(fn, limiter=limiter, clock=clock, policy=policy or RetryPolicy())


async def test_a_call_that_succeeds_is_made_once(clock: FakeClock, limiter: CubicLimiter) -> None:
    fn = _Scripted([])

    assert await _call(fn, limiter, clock) == "image"
    assert fn.calls == 1
    assert clock.monotonic() == 0


async def test_unavailable_three_times_then_success_returns_after_four_calls(
    clock: FakeClock, limiter: CubicLimiter
) -> None:
    fn = _Scripted([Unavailable("503"), Unavailable("503"), Unavailable("503")])

    assert await _call(fn, limiter, clock) == "image"
    assert fn.calls == 4


async def test_unavailable_does_not_slow_the_limiter(
    clock: FakeClock, limiter: CubicLimiter
) -> None:
    fn = _Scripted([Unavailable("503"), Unavailable("503")])

    await _call(fn, limiter, clock)

    assert limiter.rate == 64


async def test_every_throttle_is_reported_to_the_limiter(
    clock: FakeClock, limiter: CubicLimiter
) -> None:
    """Each retry is sent after the previous decrease, so each throttle halves the rate."""
    fn = _Scripted([Throttled("429"), Throttled("429"), Throttled("429")])

    with pytest.raises(Throttled):
        await _call(fn, limiter, clock, RetryPolicy(attempts=3))

    assert fn.calls == 3
    assert limiter.rate == pytest.approx(8)


async def test_a_final_error_is_raised_after_one_call(
    clock: FakeClock, limiter: CubicLimiter
) -> None:
    error = NotFound("no such image")
    fn = _Scripted([error])

    with pytest.raises(NotFound) as raised:
        await _call(fn, limiter, clock)

    assert raised.value is error
    assert fn.calls == 1
    assert clock.monotonic() == 0


async def test_an_error_outside_the_api_tree_is_not_retried(
    clock: FakeClock, limiter: CubicLimiter
) -> None:
    fn = _Scripted([KeyError("bug")])

    with pytest.raises(KeyError):
        await _call(fn, limiter, clock)

    assert fn.calls == 1


async def test_when_attempts_run_out_the_last_error_itself_is_raised(
    clock: FakeClock, limiter: CubicLimiter
) -> None:
    errors: list[ApiError] = [Unavailable("first"), Throttled("second"), Unavailable("last")]
    fn = _Scripted(errors)

    with pytest.raises(Unavailable) as raised:
        await _call(fn, limiter, clock, RetryPolicy(attempts=3))

    assert raised.value is errors[-1]
    assert fn.calls == 3


async def test_waits_are_full_jitter_within_the_exponential_cap_and_use_the_clock(
    limiter: CubicLimiter,
) -> None:
    """Before attempt n+2 the wait is in [0, min(cap, base * 2**n)], slept on the clock."""
    policy = RetryPolicy(attempts=6, base=0.5, cap=3.0)
    ceilings = [0.5, 1.0, 2.0, 3.0, 3.0]

    for _ in range(20):
        clock = _SleepRecordingClock()
        with pytest.raises(Unavailable):
            await _call(_Scripted([Unavailable("503")] * 6), limiter, clock, policy)

        assert len(clock.sleeps) == len(ceilings)
        for wait, ceiling in zip(clock.sleeps, ceilings, strict=True):
            assert 0 <= wait <= ceiling
        assert clock.monotonic() == pytest.approx(sum(clock.sleeps))


@pytest.mark.parametrize(
    "fields", [{"attempts": 0}, {"base": 0}, {"cap": -1}], ids=["attempts", "base", "cap"]
)
def test_a_policy_that_cannot_work_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        RetryPolicy(**fields)


async def test_a_seeded_rng_makes_the_waits_reproducible(limiter: CubicLimiter) -> None:
    """Every wait, the first one included, is drawn from the injected rng, never the
    global `random`: two runs on equal seeds sleep exactly the same."""
    policy = RetryPolicy(attempts=5, base=1.0, cap=20.0)

    async def sleeps_with_seed(seed: int, global_seed: int) -> list[float]:
        random.seed(global_seed)  # a different global state must change nothing
        clock = _SleepRecordingClock()
        with pytest.raises(Unavailable):
            await call_with_retry(
                _Scripted([Unavailable("503")] * 5),
                limiter=limiter,
                clock=clock,
                policy=policy,
                rng=random.Random(seed),
            )
        return clock.sleeps

    first = await sleeps_with_seed(7, global_seed=1)
    again = await sleeps_with_seed(7, global_seed=2)

    assert first == again
    expected = random.Random(7)
    assert first == [full_jitter(n, base=1.0, cap=20.0, rng=expected) for n in range(1, 5)]
