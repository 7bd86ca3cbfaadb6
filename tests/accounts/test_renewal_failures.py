"""When STS fails to renew an assumed role: its errors are told apart from Image
Builder's (an STS Throttling never halves Image Builder's pace), a failure in
botocore's advisory window keeps the current keys and is said once per credentials
(not per call), renewals are not tried on every call meanwhile, and one STS client
per (account, region) makes them all.

STS is `StsFaults`: moto's server behind a loopback proxy that answers AssumeRole
with STS's `Throttling` when told to. The fake clock starts at the real time, as
moto dates its keys by it: they expire an hour after they were issued."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

import pytest
import structlog

from tests.accounts.support import ARN_A, ROLE_A, ROLES, A, StsFaults, image, signed_by
from tests.support import scenario
from watcher.aws import AwsImageSource
from watcher.credentials import RENEWAL_RETRY_AFTER, AssumeRoleError
from watcher.errors import ApiError, Throttled, Unavailable
from watcher.ratelimit import LimiterPool
from watcher.retry import RetryPolicy, call_with_retry
from watcher.simulator import Simulator
from watcher.testing import FakeClock


async def test_sts_throttling_is_retried_without_slowing_image_builder(
    sts: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(epoch=datetime.now(UTC))
    simulator = Simulator(scenario([image(ARN_A)]))
    proxy = StsFaults(sts)
    async with proxy as sts_url, simulator as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts_url)
        proxy.fail_with = "Throttling"
        async with AwsImageSource(clock=clock, endpoint_url=url, accounts=ROLES) as source:
            pool = LimiterPool(10.0, clock, account_of=source.account_of)
            with pytest.raises(ApiError) as caught:
                await call_with_retry(
                    partial(source.get, ARN_A),
                    limiter=pool.for_arn(ARN_A),
                    clock=clock,
                    policy=RetryPolicy(attempts=3, base=0.05, cap=1.0),
                )
    failed = caught.value
    assert isinstance(failed, AssumeRoleError)
    assert isinstance(failed, Unavailable), "retried, as STS asks"
    assert not isinstance(failed, Throttled), "not Image Builder's throttling"
    assert failed.code == "Throttling"
    assert str(failed) == f"Throttling: STS AssumeRole of {ROLE_A} in us-east-1: Rate exceeded"
    assert pool.rates() == {(A, "us-east-1"): 10.0}, "Image Builder's pace is untouched"
    # One AssumeRole per attempt: botocore retries nothing behind the engine's back.
    assert proxy.assume_role_calls == 3
    assert simulator.counters.requests["GetImage"] == 0


async def test_a_failing_advisory_renewal_keeps_the_keys_and_warns_once(
    sts: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(epoch=datetime.now(UTC))
    simulator = Simulator(scenario([image(ARN_A)]))
    proxy = StsFaults(sts)
    async with proxy as sts_url, simulator as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts_url)
        async with AwsImageSource(clock=clock, endpoint_url=url, accounts=ROLES) as source:
            first = await signed_by(simulator, source, ARN_A)
            # 14 minutes or less before the keys expire, more than 10: botocore's
            # advisory window, where a failed renewal keeps the keys.
            clock.advance(46 * 60)
            proxy.fail_with = "Throttling"
            with structlog.testing.capture_logs() as logs:
                kept = [await signed_by(simulator, source, ARN_A) for _ in range(5)]
                clock.advance(RENEWAL_RETRY_AFTER)
                kept += [await signed_by(simulator, source, ARN_A) for _ in range(5)]
                proxy.fail_with = None
                clock.advance(RENEWAL_RETRY_AFTER)
                renewed = await signed_by(simulator, source, ARN_A)
    assert kept == [first] * 10
    assert renewed != first
    # The first AssumeRole, one failed renewal at each of two moments, the renewal.
    assert proxy.assume_role_calls == 4
    assert len(proxy.connections) == 1, "one STS client, kept"
    said = [(line["event"], line["log_level"]) for line in logs]
    assert said == [
        ("credentials.renewal_failed", "warning"),
        ("credentials.renewed", "info"),
    ]
    warning = logs[0]
    assert (warning["account"], warning["region"], warning["role_arn"]) == (
        A,
        "us-east-1",
        ROLE_A,
    )
    assert "Throttling" in warning["error"]
    assert "the current keys are used until" in warning["note"]
