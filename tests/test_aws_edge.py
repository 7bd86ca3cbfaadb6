"""Every way a get_image can fail becomes one of the project's own errors, at the edge."""

from __future__ import annotations

import pytest

from tests.support import WEB_BASE, scenario
from watcher.aws import AwsImageSource
from watcher.errors import (
    AccessDenied,
    ApiError,
    BadCredentials,
    InvalidRequest,
    NotFound,
    Throttled,
    Unavailable,
)
from watcher.model import ImageStatus
from watcher.simulator import Simulator
from watcher.testing import FakeClock


@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        ({"errors": {"CallRateLimitExceededException": 1.0}}, Throttled),
        ({"errors": {"ServiceUnavailableException": 1.0}}, Unavailable),
        ({"errors": {"ServiceException": 1.0}}, Unavailable),
        ({"dropped_connections": 1.0}, Unavailable),
        ({"malformed_bodies": 1.0}, Unavailable),
        ({"errors": {"ForbiddenException": 1.0}}, AccessDenied),
        ({"errors": {"ResourceNotFoundException": 1.0}}, NotFound),
        ({"errors": {"InvalidRequestException": 1.0}}, InvalidRequest),
        ({"errors": {"ClientException": 1.0}}, InvalidRequest),
    ],
)
async def test_faults_are_classified(faults: dict[str, object], expected: type[ApiError]) -> None:
    clock = FakeClock()
    async with (
        Simulator(scenario(faults=faults), clock=clock) as url,
        AwsImageSource(clock=clock, endpoint_url=url) as source,
    ):
        with pytest.raises(expected) as caught:
            await source.get(WEB_BASE)
    assert caught.value.arn == WEB_BASE


async def test_a_rate_limited_call_is_throttled() -> None:
    clock = FakeClock()
    limited = scenario(faults={"rate_limits": {"GetImage": {"rate": 0.001, "burst": 1}}})
    async with (
        Simulator(limited, clock=clock) as url,
        AwsImageSource(clock=clock, endpoint_url=url) as source,
    ):
        await source.get(WEB_BASE)  # the burst of one
        with pytest.raises(Throttled):
            await source.get(WEB_BASE)


async def test_a_snapshot_carries_status_outputs_and_the_build() -> None:
    clock = FakeClock()
    async with (
        Simulator(scenario(), clock=clock) as url,
        AwsImageSource(clock=clock, endpoint_url=url) as source,
    ):
        clock.advance(5000)
        snapshot = await source.get(WEB_BASE.rsplit("/", 1)[0])  # the version ARN
    assert (snapshot.arn, snapshot.build, snapshot.status) == (WEB_BASE, 7, ImageStatus.AVAILABLE)
    assert [a.region for a in snapshot.outputs.amis] == ["us-east-1", "eu-west-1", "ap-southeast-2"]
    assert snapshot.pipeline == "web-base-nightly"
    assert snapshot.tests_enabled is True
    assert snapshot.observed_at == clock.now()


async def test_missing_credentials_are_a_final_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    clock = FakeClock()
    async with (
        Simulator(scenario(), clock=clock) as url,
        AwsImageSource(clock=clock, endpoint_url=url) as source,
    ):
        with pytest.raises(BadCredentials, match="no usable AWS credentials"):
            await source.get(WEB_BASE)


async def test_an_unreachable_endpoint_is_unavailable() -> None:
    clock = FakeClock()
    async with AwsImageSource(
        clock=clock, endpoint_url="http://127.0.0.1:9", connect_timeout=2
    ) as source:
        with pytest.raises(Unavailable):
            await source.get(WEB_BASE)
