"""One rate limiter per (account, region): Image Builder's quotas are per account and
Region, so `[watch] max_tps` applies to each pair, and a throttle in one pair slows
no other. The account is the credentials' (an account not listed in [aws.accounts]
is read, and counted, as the default chain's)."""

from __future__ import annotations

import random

import anyio
import pytest

from tests.accounts.support import ARN_A, ARN_B, ARN_OWN, ROLES, A, B
from watcher.aws import AwsImageSource
from watcher.engine import Engine, Schedule
from watcher.errors import Throttled
from watcher.ratelimit import CubicLimiter, LimiterPool
from watcher.retry import RetryPolicy
from watcher.store import MemoryStore
from watcher.testing import FakeClock, ScriptedSource, VirtualClock

ARN_A_EU = f"arn:aws:imagebuilder:eu-west-1:{A}:image/app-a/1.0.0/2"
SHARED_BY_AWS = "arn:aws:imagebuilder:us-east-1:aws:image/amazon-linux-2023-x86/2024.1.1/1"


def account_of(clock: FakeClock | VirtualClock) -> AwsImageSource:
    """A source that knows A and B (no client is made until a call)."""
    return AwsImageSource(clock=clock, accounts=ROLES)


async def test_a_throttle_slows_only_its_own_account_and_region(clock: FakeClock) -> None:
    pool = LimiterPool(10.0, clock, account_of=account_of(clock).account_of)
    throttled = pool.for_arn(ARN_A)

    throttled.on_throttle(await throttled.acquire())
    for arn in (ARN_A_EU, ARN_B, ARN_OWN):
        pool.for_arn(arn).on_success(await pool.for_arn(arn).acquire())

    assert pool.rates() == {
        (A, "us-east-1"): pytest.approx(5.0),
        (A, "eu-west-1"): 10.0,
        (B, "us-east-1"): 10.0,
        ("default", "us-east-1"): 10.0,
    }


async def test_max_tps_applies_to_each_account_and_region(clock: FakeClock) -> None:
    """Ten requests each for A and B at 10/s: both done in 0.9 s, not 1.9 s."""
    pool = LimiterPool(10.0, clock, account_of=account_of(clock).account_of)

    async with anyio.create_task_group() as group:
        for arn in (ARN_A, ARN_B) * 10:
            group.start_soon(pool.for_arn(arn).acquire)

    assert clock.monotonic() == pytest.approx(0.9)


def test_accounts_not_listed_share_the_default_credentials_limiter(clock: FakeClock) -> None:
    """An image shared by another account is read with the default credentials, and
    so spends the default credentials' account's quota."""
    pool = LimiterPool(10.0, clock, account_of=account_of(clock).account_of)

    assert pool.for_arn(SHARED_BY_AWS) is pool.for_arn(ARN_OWN)
    assert pool.for_arn(ARN_A) is not pool.for_arn(ARN_OWN)
    assert pool.for_arn(ARN_A) is not pool.for_arn(ARN_A_EU)


def test_a_single_limiter_given_to_the_engine_paces_every_call(clock: FakeClock) -> None:
    """What `wait-until-available` and `start` still build: one limiter for all."""
    limiter = CubicLimiter(10.0, clock)
    engine = Engine(
        source=ScriptedSource(clock, {}),
        store=MemoryStore(),
        clock=clock,
        limiter=limiter,
        schedule=Schedule(interval_for=lambda _: 10.0),
        retry=RetryPolicy(),
    )

    assert {id(engine.limiter.for_arn(arn)) for arn in (ARN_A, ARN_B, ARN_A_EU)} == {id(limiter)}


async def test_the_engine_polls_each_arn_through_its_own_account_and_regions_limiter() -> None:
    clock = VirtualClock()
    throttled = Throttled("CallRateLimitExceededException: Rate exceeded", code="x", arn=ARN_A)
    source = ScriptedSource(
        clock,
        {ARN_A: [throttled, throttled, "AVAILABLE"], ARN_A_EU: ["AVAILABLE"], ARN_B: ["AVAILABLE"]},
    )
    engine = Engine(
        source=source,
        store=MemoryStore(),
        clock=clock,
        limiter=LimiterPool(10.0, clock, account_of=account_of(clock).account_of),
        schedule=Schedule(interval_for=lambda _: 10.0),
        retry=RetryPolicy(attempts=5, base=0.5, cap=1.0),
        rng=random.Random(3),
    )
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        result = await engine.run([ARN_A, ARN_A_EU, ARN_B], stop_when_ended=True)
        group.cancel_scope.cancel()

    assert all(watch.ended and watch.error is None for watch in result.watches.values())
    rates = engine.limiter.rates()
    assert rates[A, "us-east-1"] < 10.0, "A's throttles in us-east-1 slowed it"
    assert rates[A, "eu-west-1"] == rates[B, "us-east-1"] == 10.0, "and nobody else"
