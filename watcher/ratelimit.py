"""The request-rate limiters that workers share for calls to Image Builder: one per
(account, region), since Image Builder's quotas are per account and Region
(`LimiterPool`), each a `CubicLimiter`.

A token bucket of capacity 1 paces requests smoothly at `rate` per second, serving
waiters first come, first served, urgent ones first (see `CubicLimiter`). The rate
adapts to the service: a throttle halves it (once per congestion episode),
successes grow it back along a CUBIC curve, always within [min_tps, max_tps].

It must never read or wait on real time (only the injected `Clock`), never send
bursts, and never let one congestion episode cut the rate more than once.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import anyio
from botocore.retries.throttling import CubicCalculator

from watcher.clock import Clock
from watcher.credentials import DEFAULT_ACCOUNT

__all__ = ["CubicLimiter", "LimiterKey", "LimiterPool"]

LimiterKey = tuple[str, str]
"""(account, region): the account whose credentials make the calls (its id when
listed in [aws.accounts], else `DEFAULT_ACCOUNT`), and the ARN's region."""

# CUBIC rather than a linear additive increase: after a halving, a linear ramp
# saws between R/2 and R and averages only 0.75 R of the server's limit R. CUBIC
# climbs fast back toward the rate that was throttled, flattens out just below it
# and only then probes slowly above it, so the rate spends most of its time near R.
# beta=0.5 makes a throttle halve the rate; 0.4 is CUBIC's usual scale constant.
_BETA = 0.5
_SCALE = 0.4
# Float sums of sleeps rarely land exactly on a whole token.
_EPSILON = 1e-9
URGENT_STREAK = 10
"""Urgent requests served in a row before an ordinary waiter gets the next token."""


class CubicLimiter:
    """A shared, adaptive pace for requests: halve on a throttle, grow on success.

    `acquire()` waits until a request may be sent and returns a ticket (the send
    time); hand the ticket back to `on_success` or `on_throttle` with the outcome.
    A throttle whose request was sent before the last decrease is ignored: it was
    in flight at the old rate and says nothing about the new one.

    Waiters are served in arrival order, except that an urgent one (a push event's
    poll: the event says the build changed now; or the first poll of a build
    discovery just found: its first sighting is news) goes before every waiter that
    is not, up to URGENT_STREAK in a row: then one ordinary waiter goes. A burst of
    events (a thousand builds started at once) slows the scheduled polls, first
    sightings and safety-net polls to one in URGENT_STREAK + 1 calls, never to none.
    """

    def __init__(
        self,
        max_tps: float,
        clock: Clock,
        *,
        min_tps: float | None = None,
        start_tps: float | None = None,
    ) -> None:
        # Halving stops at 0.2 calls/s, or at the ceiling itself when that is lower.
        min_tps = min(0.2, max_tps) if min_tps is None else min_tps
        if not 0 < min_tps <= max_tps:
            raise ValueError(f"need 0 < min_tps <= max_tps, got {min_tps} and {max_tps}")
        start = max_tps if start_tps is None else start_tps
        if not min_tps <= start <= max_tps:
            raise ValueError(f"start_tps {start} is outside [{min_tps}, {max_tps}]")
        self._max = max_tps
        self._min = min_tps
        self._clock = clock
        self._rate = start
        self._lock = anyio.Lock()
        self._urgent_lock = anyio.Lock()
        self._urgent_waiting = 0
        self._urgent_streak = 0
        """Urgent requests served in a row while an ordinary one waited."""
        now = clock.monotonic()
        self._tokens = 1.0
        self._refilled_at = now
        self._decreased_at = -math.inf
        # Place the curve as if a decrease happened `k` seconds ago, so it stands
        # at the start rate now and from here on probes slowly upward (before any
        # throttle there is no better estimate of the server's limit).
        k = (start * (1 - _BETA) / _SCALE) ** (1 / 3)
        self._cubic = CubicCalculator(start, now - k, scale_constant=_SCALE, beta=_BETA)

    @property
    def rate(self) -> float:
        """The requests per second currently allowed."""
        return self._rate

    @property
    def queued(self) -> bool:
        """Whether a request is waiting for its turn: the limiter is the bottleneck."""
        return self._lock.locked() or self._urgent_waiting > 0

    async def acquire(self, *, urgent: bool = False) -> float:
        """Wait until a request may be sent; return its ticket, the send time.
        `urgent`: served before every waiter that is not."""
        # Fast path, no lock: nobody is queued and a token is there. Taking it
        # synchronously cannot overtake a waiter, since none exists.
        if not self.queued:
            self._refill()
            if self._tokens >= 1.0 - _EPSILON:
                self._tokens = max(0.0, self._tokens - 1.0)
                return self._clock.monotonic()
        # A lock is held while waiting for the token, so waiters of each kind queue
        # in FIFO order; the head of the ordinary queue also lets every urgent
        # waiter go first.
        if urgent:
            self._urgent_waiting += 1
            try:
                async with self._urgent_lock:
                    return await self._take(urgent=True)
            finally:
                self._urgent_waiting -= 1
        async with self._lock:
            return await self._take(urgent=False)

    def _my_turn(self, urgent: bool) -> bool:
        """Whether the head waiter of its kind may take a token now. Exclusive: the
        two heads are never both told to wait for the other."""
        streak_over = self._urgent_streak >= URGENT_STREAK
        if urgent:
            # An ordinary waiter holds `_lock` while it waits for its token.
            return not (streak_over and self._lock.locked())
        return not self._urgent_waiting or streak_over

    async def _take(self, *, urgent: bool) -> float:
        """Wait for a token and take it, when it is this kind's turn."""
        while True:
            self._refill()
            if self._tokens >= 1.0 - _EPSILON:
                if self._my_turn(urgent):
                    self._tokens = max(0.0, self._tokens - 1.0)
                    # Counted only while an ordinary request waits: it is what
                    # the streak is there to bound.
                    self._urgent_streak = (
                        self._urgent_streak + 1 if urgent and self._lock.locked() else 0
                    )
                    return self._clock.monotonic()
                # The other kind takes this token: the next comes a token later.
                await self._clock.sleep(1.0 / self._rate)
                continue
            # Re-checked after the sleep: a throttle may have slowed the rate.
            await self._clock.sleep((1.0 - self._tokens) / self._rate)

    def on_success(self, ticket: float) -> None:
        """The request sent with `ticket` was answered: let the rate grow."""
        self._refill()
        self._set_rate(self._cubic.success_received(self._clock.monotonic()))

    def on_throttle(self, ticket: float) -> None:
        """The request sent with `ticket` was throttled: halve the rate, once per episode."""
        # `<=`: a request sent in the same instant as the decrease was not paced
        # by the new rate either.
        if ticket <= self._decreased_at:
            return
        self._refill()
        now = self._clock.monotonic()
        self._set_rate(self._cubic.error_received(self._rate, now))
        self._decreased_at = now

    def _refill(self) -> None:
        # Called before every rate change, so tokens earned so far count at the
        # rate that was in force while they were earned.
        now = self._clock.monotonic()
        self._tokens = min(1.0, self._tokens + (now - self._refilled_at) * self._rate)
        self._refilled_at = now

    def _set_rate(self, rate: float) -> None:
        self._rate = min(self._max, max(self._min, rate))


class LimiterPool:
    """One `CubicLimiter` per (account, region), each made on first use with the same
    settings (`max_tps` applies to each).

    AWS General Reference, "EC2 Image Builder endpoints and quotas": service quotas
    are "the maximum number of service resources or operations for your AWS
    account", and each Region has its own endpoint; that an account's rate is
    counted per Region is our reading (as for AWS's quotas generally). So a throttle
    from one account in one region says nothing of another pair, and each pair is
    paced and slowed on its own. `account_of(arn)` names the account whose
    credentials read `arn` (`AwsImageSource.account_of`): the quota is the caller's,
    so an ARN of an account not listed in [aws.accounts] counts against the default
    credentials' account, whoever owns the image."""

    def __init__(
        self,
        max_tps: float,
        clock: Clock,
        *,
        account_of: Callable[[str], str] | None = None,
        min_tps: float | None = None,
        start_tps: float | None = None,
    ) -> None:
        CubicLimiter(max_tps, clock, min_tps=min_tps, start_tps=start_tps)  # checked now
        self._make: Callable[[], CubicLimiter] = lambda: CubicLimiter(
            max_tps, clock, min_tps=min_tps, start_tps=start_tps
        )
        self._account_of = account_of or (lambda _arn: DEFAULT_ACCOUNT)
        self._limiters: dict[LimiterKey, CubicLimiter] = {}

    @classmethod
    def sharing(cls, limiter: CubicLimiter) -> LimiterPool:
        """A pool that gives `limiter` to every key: one pace for every account and
        region (a caller that built a single limiter, as before pools)."""
        pool = cls.__new__(cls)
        pool._make = lambda: limiter
        pool._account_of = lambda _arn: DEFAULT_ACCOUNT
        pool._limiters = {}
        return pool

    def for_arn(self, arn: str) -> CubicLimiter:
        """The limiter of the calls about `arn` (an image, version or pipeline ARN):
        its account's credentials, its own region (the ARN's fourth field)."""
        parts = arn.split(":", 4)
        return self.get(self._account_of(arn), parts[3] if len(parts) > 3 else "")

    def get(self, account: str, region: str) -> CubicLimiter:
        key = (account, region)
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = self._limiters[key] = self._make()
        return limiter

    def rates(self) -> dict[LimiterKey, float]:
        """Each (account, region) seen so far, and the rate its limiter allows now."""
        return {key: limiter.rate for key, limiter in self._limiters.items()}

    @property
    def queued(self) -> bool:
        """Whether a request waits for its turn at any limiter."""
        return any(limiter.queued for limiter in self._limiters.values())
