"""One account's refusal does not disturb the others: its ARNs are paused on
AccessDenied (and /readyz-style `paused()` says so) while the other accounts' builds
are watched to AVAILABLE and reported. The refusal is moto's, as AWS's: the default
chain (an IAM user) may assume A's role but not B's. The engine on virtual time."""

from __future__ import annotations

import os
import random
from collections import defaultdict

import anyio
import pytest
import structlog

from tests.accounts.support import (
    ARN_A,
    ARN_B,
    ARN_OWN,
    ROLE_A,
    ROLE_B,
    ROLES,
    A,
    B,
    HeldSource,
    caller_may_assume,
    image,
)
from tests.support import scenario
from watcher.aws import AwsImageSource
from watcher.credentials import AssumeRoleDenied
from watcher.engine import Engine, Recovery, Schedule
from watcher.errors import AccessDenied
from watcher.ratelimit import LimiterPool
from watcher.retry import RetryPolicy
from watcher.simulator import Simulator
from watcher.store import MemoryStore
from watcher.testing import RecordingSink, VirtualClock

BUILD = (("BUILDING", 60), ("AVAILABLE", None))


async def test_a_refused_role_pauses_its_account_and_the_others_reach_available(
    sts: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await caller_may_assume(sts, monkeypatch, ROLE_A)
    clock = VirtualClock()
    simulator = Simulator(
        scenario([image(arn, *BUILD) for arn in (ARN_A, ARN_B, ARN_OWN)]), clock=clock
    )
    sink = RecordingSink()
    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as group:
            group.start_soon(clock.drive)
            async with (
                simulator as url,
                AwsImageSource(clock=clock, endpoint_url=url, accounts=ROLES) as aws,
            ):
                engine = Engine(
                    source=HeldSource(aws, clock),
                    store=MemoryStore(),
                    listeners=[sink],
                    clock=clock,
                    limiter=LimiterPool(10.0, clock, account_of=aws.account_of),
                    schedule=Schedule(interval_for=lambda _: 30.0),
                    retry=RetryPolicy(attempts=3, base=0.05, cap=1.0),
                    recovery=Recovery(cap=300.0),
                    rng=random.Random(7),
                )
                result = await engine.run(
                    [ARN_A, ARN_B, ARN_OWN], stop_when_ended=True, time_limit=3600
                )
                role_a = await (
                    await aws.accounts.session(A, "us-east-1").get_credentials()
                ).get_frozen_credentials()
            group.cancel_scope.cancel()
    seen: dict[str, list[str]] = defaultdict(list)
    for event in sink.events:
        seen[event.image.arn].append(event.current.status.value)
    assert seen == {
        ARN_A: ["BUILDING", "AVAILABLE"],
        ARN_OWN: ["BUILDING", "AVAILABLE"],
    }
    refused = result.watches[ARN_B].error
    assert isinstance(refused, AccessDenied)
    assert isinstance(refused, AssumeRoleDenied), "STS's refusal, not Image Builder's"
    assert str(refused).startswith(f"AccessDenied: STS AssumeRole of {ROLE_B} in us-east-1: ")
    assert engine.paused() == {"AssumeRoleDenied (AccessDenied)": 1}
    paused = [line for line in logs if line["event"] == "image.watch_paused"]
    assert [line["arn"] for line in paused] == [ARN_B]
    # Said once, by the engine: not also by botocore, with a traceback, on each retry.
    assert not [r for r in caplog.records if "credentials failed" in r.getMessage()]
    # No request of B's reached Image Builder: only A's role and the default chain
    # (the IAM user) signed any.
    assert simulator.counters.keys_used() == {role_a.access_key, os.environ["AWS_ACCESS_KEY_ID"]}
    # Each account and region paced on its own; B's limiter was asked for its turn.
    assert set(engine.limiter.rates()) == {
        (A, "us-east-1"),
        (B, "us-east-1"),
        ("default", "us-east-1"),
    }
