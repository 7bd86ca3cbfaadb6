"""An assumed role is renewed by botocore's own refreshable credentials before its
keys expire, on the injected clock: no loop of ours, and no AssumeRole before the
keys come near their end.

STS (moto's server) dates its Expiration by the real clock, an hour after the call
(AssumeRole's default DurationSeconds, 3600): the fake clock starts at the real time
taken before the first call, so the first keys expire no sooner than an hour after
its start. botocore renews within 15 minutes of expiry (its advisory window) and must
within 10 (its mandatory one)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.accounts.support import ARN_A, ARN_OWN, DEFAULT_KEY, ROLES, image, signed_by
from tests.support import scenario
from watcher.aws import AwsImageSource
from watcher.errors import BadCredentials
from watcher.simulator import Simulator
from watcher.testing import FakeClock


async def test_the_role_is_assumed_again_before_its_keys_expire(sts: str) -> None:
    start = datetime.now(UTC)
    clock = FakeClock(epoch=start)
    simulator = Simulator(scenario([image(ARN_A), image(ARN_OWN)]))
    async with (
        simulator as url,
        AwsImageSource(clock=clock, endpoint_url=url, accounts=ROLES) as source,
    ):
        first = await signed_by(simulator, source, ARN_A)
        clock.advance(30 * 60)  # 30 minutes or more before the first keys expire
        at_half_time = await signed_by(simulator, source, ARN_A)
        clock.advance(16 * 60)  # 14 minutes or more before: in the advisory window
        renewed = await signed_by(simulator, source, ARN_A)
        own = await signed_by(simulator, source, ARN_OWN)
    assert at_half_time == first, "nothing was renewed while far from expiry"
    assert renewed not in (first, DEFAULT_KEY), "a new AssumeRole's keys signed the call"
    assert clock.now() < start + timedelta(hours=1), "while the first keys were still valid"
    assert simulator.counters.keys_used("GetImage") == {first, renewed, DEFAULT_KEY}
    assert own == DEFAULT_KEY


async def test_a_clock_ahead_of_sts_is_a_credentials_error_that_says_so(sts: str) -> None:
    """Keys just issued that already look expired by the injected clock: botocore
    raises a bare RuntimeError; it reaches the engine as BadCredentials, not a crash."""
    clock = FakeClock(epoch=datetime.now(UTC) + timedelta(hours=2))
    async with (
        Simulator(scenario([image(ARN_A)])) as url,
        AwsImageSource(clock=clock, endpoint_url=url, accounts=ROLES) as source,
    ):
        with pytest.raises(BadCredentials, match="clock ahead of the real time"):
            await source.get(ARN_A)
