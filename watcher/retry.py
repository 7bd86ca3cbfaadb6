"""The single retry layer for Image Builder calls (botocore's own retries are off).

Each attempt first takes a turn from the shared `CubicLimiter` and reports back how
it went, so a throttled call both backs off (full-jitter exponential wait) and
slows every other worker. Only `RetryableError`s are retried.

It must never retry a `FinalError` or any other exception, never sleep except
through the injected `Clock`, and never hide the last error behind a wrapper.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from watcher.backoff import full_jitter
from watcher.clock import Clock
from watcher.errors import RetryableError, Throttled
from watcher.ratelimit import CubicLimiter

__all__ = ["RetryPolicy", "call_with_retry"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a call is retried.

    Before attempt n+1 (n = 1, 2, ...) the wait is uniform in
    [0, min(cap, base * 2**(n-1))] seconds: AWS's "full jitter" (`full_jitter`).
    """

    attempts: int = 5
    """Total attempts per call, the first one included."""
    base: float = 1.0
    """Seconds: the widest wait before the second attempt."""
    cap: float = 20.0
    """Seconds: no wait is longer."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if self.base <= 0 or self.cap <= 0:
            raise ValueError(f"base and cap must be positive, got {self.base} and {self.cap}")


async def call_with_retry(
    fn: Callable[[], Awaitable[T]],
    *,
    limiter: CubicLimiter,
    clock: Clock,
    policy: RetryPolicy,
    on_failure: Callable[[RetryableError], None] | None = None,
    rng: random.Random | None = None,
    urgent: bool = False,
) -> T:
    """Await `fn()` paced by `limiter`, retrying `Throttled` and `Unavailable`;
    `urgent`: each attempt goes before the limiter's other waiters.

    Returns what `fn` returns; when attempts run out, raises the last error itself.
    `on_failure` hears of each failed attempt as it happens, so a caller cut off
    mid-retry (a timeout) still knows why it was not done. `rng` draws the jittered
    waits (a fresh one when not given): seed it and the waits are reproducible.
    """

    async def attempt() -> T:
        ticket = await limiter.acquire(urgent=urgent)
        try:
            result = await fn()
        except Throttled as exc:
            limiter.on_throttle(ticket)
            if on_failure is not None:
                on_failure(exc)
            raise
        except RetryableError as exc:
            if on_failure is not None:
                on_failure(exc)
            raise
        limiter.on_success(ticket)
        return result

    # The first attempt runs outside tenacity: nearly every call succeeds at once,
    # and building tenacity's retry state per call cost more CPU than the rest of
    # a poll (measured in bench/, the overhead benchmark). Only a failed call pays.
    try:
        return await attempt()
    except RetryableError:
        if policy.attempts <= 1:
            raise
    # Imported here: a one-shot `wait-until-available` whose calls all succeed
    # never pays for importing tenacity (the CI latency benchmark counts start-up).
    from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

    draw = rng or random.Random()

    def wait(failed: int) -> float:
        return full_jitter(failed, base=policy.base, cap=policy.cap, rng=draw)

    def wait_in_tenacity(state: RetryCallState) -> float:
        # Tenacity counts only its own attempts; the first call failed before it.
        return wait(state.attempt_number + 1)

    await clock.sleep(wait(1))
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(RetryableError),
        wait=wait_in_tenacity,
        stop=stop_after_attempt(policy.attempts - 1),
        sleep=clock.sleep,
        reraise=True,
    )
    return await retrying(attempt)
