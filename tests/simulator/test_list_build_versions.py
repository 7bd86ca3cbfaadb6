"""ListImageBuildVersions: every started build of a version, paginated."""

from __future__ import annotations

import pytest

from tests.support import WEB_BASE_VERSION, imagebuilder, scenario, web_base_image
from watcher.simulator import Simulator
from watcher.testing import FakeClock

BUILDS = [web_base_image(arn=f"{WEB_BASE_VERSION}/{n}", start=10 * n) for n in range(1, 6)]


async def test_paginator_walks_every_started_build_with_next_tokens(clock: FakeClock) -> None:
    async with Simulator(scenario(BUILDS), clock=clock) as url, imagebuilder(url) as client:
        clock.advance(40)  # builds 1-4 have started, 5 has not
        pages = [
            page
            async for page in client.get_paginator("list_image_build_versions").paginate(
                imageVersionArn=WEB_BASE_VERSION, PaginationConfig={"PageSize": 3}
            )
        ]
    assert [len(p["imageSummaryList"]) for p in pages] == [3, 1]
    assert "nextToken" in pages[0]
    assert "nextToken" not in pages[1]
    arns = [s["arn"] for p in pages for s in p["imageSummaryList"]]
    assert arns == [f"{WEB_BASE_VERSION}/{n}" for n in range(1, 5)]


async def test_filters_select_by_summary_field(clock: FakeClock) -> None:
    builds = [*BUILDS[:2], web_base_image(arn=f"{WEB_BASE_VERSION}/9", platform="Windows")]
    async with Simulator(scenario(builds), clock=clock) as url, imagebuilder(url) as client:
        clock.advance(100)
        page = await client.list_image_build_versions(
            imageVersionArn=WEB_BASE_VERSION, filters=[{"name": "platform", "values": ["Windows"]}]
        )
    assert [s["arn"] for s in page["imageSummaryList"]] == [f"{WEB_BASE_VERSION}/9"]


async def test_a_forged_next_token_is_refused(clock: FakeClock) -> None:
    async with Simulator(scenario(BUILDS), clock=clock) as url, imagebuilder(url) as client:
        with pytest.raises(client.exceptions.InvalidPaginationTokenException):
            await client.list_image_build_versions(
                imageVersionArn=WEB_BASE_VERSION, nextToken="bm90IGEgdG9rZW4="
            )


async def test_a_build_arn_is_not_a_version_arn(clock: FakeClock) -> None:
    async with Simulator(scenario(BUILDS), clock=clock) as url, imagebuilder(url) as client:
        with pytest.raises(client.exceptions.InvalidRequestException) as caught:
            await client.list_image_build_versions(imageVersionArn=f"{WEB_BASE_VERSION}/1")
    assert "'imageVersionArn'" in caught.value.response["Error"]["Message"]


async def test_unknown_filter_name_is_an_invalid_request(clock: FakeClock) -> None:
    async with Simulator(scenario(BUILDS), clock=clock) as url, imagebuilder(url) as client:
        with pytest.raises(client.exceptions.InvalidRequestException):
            await client.list_image_build_versions(
                imageVersionArn=WEB_BASE_VERSION, filters=[{"name": "colour", "values": ["blue"]}]
            )
