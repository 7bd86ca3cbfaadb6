"""Outages: every request in a window of scenario time answered with one error, then
the honest answers again."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.support import WEB_BASE, imagebuilder, scenario
from watcher.simulator import Simulator
from watcher.testing import FakeClock


async def test_an_outage_denies_every_call_in_its_window_then_ends(clock: FakeClock) -> None:
    outage = {"code": "ForbiddenException", "start": "10s", "end": "20s"}
    simulator = Simulator(scenario(faults={"outages": [outage]}), clock=clock)
    outcomes = []
    async with simulator as url, imagebuilder(url) as client:
        for at in (0, 10, 19, 20):
            clock.advance(at - clock.monotonic())
            try:
                await client.get_image(imageBuildVersionArn=WEB_BASE)
                outcomes.append("ok")
            except client.exceptions.ForbiddenException as exc:
                outcomes.append(str(exc.response["ResponseMetadata"]["HTTPStatusCode"]))
    assert outcomes == ["ok", "403", "403", "ok"]
    assert simulator.counters.injected["GetImage", "ForbiddenException"] == 2


async def test_an_expired_token_outage_answers_aws_common_credential_error(
    clock: FakeClock,
) -> None:
    """Not in Image Builder's model; the code and 403 are AWS's common errors."""
    outage = {"code": "ExpiredTokenException", "end": "1m", "operations": ["GetImage"]}
    simulator = Simulator(scenario(faults={"outages": [outage]}), clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        with pytest.raises(client.exceptions.ClientError) as caught:
            await client.get_image(imageBuildVersionArn=WEB_BASE)
        listed = await client.list_image_build_versions()  # not in the outage's operations
    error = caught.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
        "ExpiredTokenException",
        403,
    )
    assert listed["imageSummaryList"]


def test_an_outage_with_an_unknown_code_or_an_empty_window_is_refused() -> None:
    with pytest.raises(ValidationError, match="did you mean 'ForbiddenException'"):
        scenario(faults={"outages": [{"code": "ForbidenException", "end": "1m"}]})
    with pytest.raises(ValidationError, match="must come after start"):
        scenario(faults={"outages": [{"code": "ForbiddenException", "start": "1m", "end": "1m"}]})
