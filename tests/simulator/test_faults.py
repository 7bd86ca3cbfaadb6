"""Injected faults reach the unmodified client as they would from AWS."""

from __future__ import annotations

import contextlib
import json

import aiohttp
import botocore.exceptions
import pytest

from tests.support import WEB_BASE, imagebuilder, raw_get_image, scenario
from watcher.simulator import Simulator, model
from watcher.testing import FakeClock

GET_IMAGE_ERRORS = [
    "CallRateLimitExceededException",
    "ServiceUnavailableException",
    "ServiceException",
    "ClientException",
    "InvalidRequestException",
    "ForbiddenException",
    "ResourceNotFoundException",
]


@pytest.mark.parametrize("code", GET_IMAGE_ERRORS)
async def test_injected_error_raises_the_modeled_exception_class(
    code: str, clock: FakeClock
) -> None:
    simulator = Simulator(scenario(faults={"errors": {code: 1.0}}), clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        with pytest.raises(getattr(client.exceptions, code)) as caught:
            await client.get_image(imageBuildVersionArn=WEB_BASE)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == model.error_status(code)
    assert simulator.counters.injected["GetImage", code] == 1


async def test_dropped_connection_reaches_the_client_as_connection_closed(clock: FakeClock) -> None:
    """aiohttp silently resends an idempotent GET once after a server disconnect, so
    one client call costs two requests here; the counters see both."""
    simulator = Simulator(scenario(faults={"dropped_connections": 1.0}), clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        with pytest.raises(botocore.exceptions.ConnectionClosedError):
            await client.get_image(imageBuildVersionArn=WEB_BASE)
    assert simulator.counters.requests["GetImage"] == 2
    assert simulator.counters.responses["GetImage", "dropped"] == 2


async def test_malformed_bodies_are_cut_json_or_not_json(clock: FakeClock) -> None:
    simulator = Simulator(scenario(faults={"malformed_bodies": 1.0}), clock=clock)
    async with simulator as url, aiohttp.ClientSession() as http:
        bodies = [(await raw_get_image(http, url, WEB_BASE))[2] for _ in range(12)]
    kinds = set()
    for body in bodies:
        with pytest.raises(ValueError):  # noqa: PT011 - json raises exactly ValueError subclasses
            json.loads(body)
        kinds.add("html" if body.startswith(b"<html>") else "cut")
    assert kinds == {"html", "cut"}
    assert simulator.counters.injected["GetImage", "malformed"] == 12


async def test_malformed_body_leaves_the_client_without_an_image(clock: FakeClock) -> None:
    """botocore turns an unparseable 200 into a response with no `image`: the
    watcher must treat that as a failed call, and this shows why."""
    simulator = Simulator(scenario(faults={"malformed_bodies": 1.0}), clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        response = await client.get_image(imageBuildVersionArn=WEB_BASE)
    assert "image" not in response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200


async def test_latency_is_fixed_plus_a_bounded_random_part(clock: FakeClock) -> None:
    simulator = Simulator(
        scenario(faults={"latency": {"fixed": "2s", "random": "1s"}}), clock=clock
    )
    delays = []
    async with simulator as url, imagebuilder(url) as client:
        for _ in range(20):
            before = clock.monotonic()
            await client.get_image(imageBuildVersionArn=WEB_BASE)
            delays.append(clock.monotonic() - before)
    assert all(2.0 <= d <= 3.0 for d in delays)
    assert len(set(delays)) > 1


async def test_counters_tell_injected_errors_from_natural_ones(clock: FakeClock) -> None:
    simulator = Simulator(
        scenario(faults={"errors": {"ResourceNotFoundException": 0.5}}, seed=3), clock=clock
    )
    missing = WEB_BASE.replace("web-base", "nothing-here")
    async with simulator as url, imagebuilder(url) as client:
        for arn in [WEB_BASE] * 20 + [missing] * 5:
            with contextlib.suppress(client.exceptions.ResourceNotFoundException):
                await client.get_image(imageBuildVersionArn=arn)
    counters = simulator.counters
    injected = counters.injected["GetImage", "ResourceNotFoundException"]
    assert counters.requests["GetImage"] == 25
    assert 0 < injected < 25
    # Every not-found the plan did not inject came from the five unknown ARNs.
    assert counters.outcome("ResourceNotFoundException") - injected <= 5
    assert counters.outcome("ok") + counters.outcome("ResourceNotFoundException") == 25
