"""ListImageBuildVersions: every build of a version, or of the account, newest first,
paginated and filtered as the model describes."""

from __future__ import annotations

import aiohttp
import pytest

from tests.simulator.helpers import build_arn, images_of, raw_call
from tests.support import ACCOUNT, WEB_BASE_VERSION, imagebuilder, scenario, web_base_image
from watcher.simulator import Simulator
from watcher.testing import FakeClock

BUILDS = [web_base_image(arn=f"{WEB_BASE_VERSION}/{n}", start=10 * n) for n in range(1, 6)]
OTHER_IMAGE = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/api-runtime/2.0.3/1"


async def test_paginator_walks_every_started_build_newest_first(clock: FakeClock) -> None:
    """Newest first (by dateCreated, then build number) is our reading: the model
    documents no order."""
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
    assert arns == [f"{WEB_BASE_VERSION}/{n}" for n in (4, 3, 2, 1)]


async def test_builds_created_together_are_ordered_by_build_number(clock: FakeClock) -> None:
    async with (
        Simulator(scenario(images_of(2, 9, 5)), clock=clock) as url,
        imagebuilder(url) as client,
    ):
        page = await client.list_image_build_versions(imageVersionArn=WEB_BASE_VERSION)
    assert [s["arn"] for s in page["imageSummaryList"]] == [build_arn(n) for n in (9, 5, 2)]


async def test_without_a_version_arn_every_build_in_the_account_is_listed(
    clock: FakeClock,
) -> None:
    """The model's imageVersionArn: "This parameter is optional. If you don't specify
    it, Image Builder returns build versions for all of the images in your account." """
    other = {"arn": OTHER_IMAGE, "timeline": [{"status": "PENDING"}], "start": 1}
    async with (
        Simulator(scenario([*images_of(1, 2), other]), clock=clock) as url,
        imagebuilder(url) as client,
    ):
        clock.advance(1)
        page = await client.list_image_build_versions()
    assert [s["arn"] for s in page["imageSummaryList"]] == [OTHER_IMAGE, build_arn(2), build_arn(1)]


async def test_a_wildcard_version_arn_is_refused_with_the_validation_message(
    clock: FakeClock,
) -> None:
    """The model: "The ARN must specify an exact version ... - wildcards aren't
    allowed", and its pattern for imageVersionArn says so too."""
    async with Simulator(scenario(BUILDS), clock=clock) as url, imagebuilder(url) as client:
        with pytest.raises(client.exceptions.InvalidRequestException) as caught:
            await client.list_image_build_versions(
                imageVersionArn=WEB_BASE_VERSION.replace("1.4.0", "1.x.x")
            )
    message = caught.value.response["Error"]["Message"]
    assert message.startswith("1 validation error detected: Value 'arn:")
    assert "at 'imageVersionArn' failed to satisfy constraint: Member must satisfy" in message


async def test_a_build_arn_is_not_a_version_arn(clock: FakeClock) -> None:
    async with Simulator(scenario(BUILDS), clock=clock) as url, imagebuilder(url) as client:
        with pytest.raises(client.exceptions.InvalidRequestException) as caught:
            await client.list_image_build_versions(imageVersionArn=f"{WEB_BASE_VERSION}/1")
    assert "'imageVersionArn'" in caught.value.response["Error"]["Message"]


async def test_filters_select_by_summary_field(clock: FakeClock) -> None:
    builds = [*BUILDS[:2], web_base_image(arn=f"{WEB_BASE_VERSION}/9", platform="Windows")]
    async with Simulator(scenario(builds), clock=clock) as url, imagebuilder(url) as client:
        clock.advance(100)
        page = await client.list_image_build_versions(
            imageVersionArn=WEB_BASE_VERSION, filters=[{"name": "platform", "values": ["Windows"]}]
        )
    assert [s["arn"] for s in page["imageSummaryList"]] == [f"{WEB_BASE_VERSION}/9"]


async def test_version_filter_matches_the_semantic_version_without_the_build_number(
    clock: FakeClock,
) -> None:
    newer = web_base_image(arn=WEB_BASE_VERSION.replace("1.4.0", "1.5.0") + "/1")
    async with (
        Simulator(scenario([*images_of(1, 2), newer]), clock=clock) as url,
        imagebuilder(url) as client,
    ):
        page = await client.list_image_build_versions(
            filters=[{"name": "version", "values": ["1.4.0"]}]
        )
    assert [s["arn"] for s in page["imageSummaryList"]] == [build_arn(2), build_arn(1)]


async def test_filters_of_different_names_must_all_match(clock: FakeClock) -> None:
    builds = [*images_of(1), web_base_image(arn=build_arn(2), os_version="Ubuntu 22")]
    async with Simulator(scenario(builds), clock=clock) as url, imagebuilder(url) as client:
        page = await client.list_image_build_versions(
            filters=[
                {"name": "name", "values": ["web-base"]},
                {"name": "osVersion", "values": ["Ubuntu 22"]},
            ]
        )
    assert [s["arn"] for s in page["imageSummaryList"]] == [build_arn(2)]


@pytest.mark.parametrize("size", [0, 26])
async def test_max_results_outside_1_to_25_is_refused(size: int, clock: FakeClock) -> None:
    """maxResults is the model's RestrictedInteger, 1 to 25. Sent raw, since botocore
    refuses 0 before sending it."""
    async with Simulator(scenario(BUILDS), clock=clock) as url, aiohttp.ClientSession() as http:
        status, headers, body = await raw_call(
            http, url, "ListImageBuildVersions", {"maxResults": size}
        )
    assert (status, headers["x-amzn-ErrorType"]) == (400, "InvalidRequestException")
    assert f"Value '{size}' at 'maxResults' failed to satisfy constraint" in body.decode()


async def test_without_max_results_a_page_holds_25(clock: FakeClock) -> None:
    async with (
        Simulator(scenario(images_of(*range(1, 31))), clock=clock) as url,
        imagebuilder(url) as client,
    ):
        page = await client.list_image_build_versions(imageVersionArn=WEB_BASE_VERSION)
    assert len(page["imageSummaryList"]) == 25
    assert "nextToken" in page


async def test_a_forged_next_token_is_refused(clock: FakeClock) -> None:
    async with Simulator(scenario(BUILDS), clock=clock) as url, imagebuilder(url) as client:
        with pytest.raises(client.exceptions.InvalidPaginationTokenException):
            await client.list_image_build_versions(
                imageVersionArn=WEB_BASE_VERSION, nextToken="bm90IGEgdG9rZW4="
            )


async def test_a_next_token_is_only_good_for_the_query_that_made_it(clock: FakeClock) -> None:
    async with Simulator(scenario(BUILDS), clock=clock) as url, imagebuilder(url) as client:
        clock.advance(100)
        first = await client.list_image_build_versions(
            imageVersionArn=WEB_BASE_VERSION, maxResults=2
        )
        with pytest.raises(client.exceptions.InvalidPaginationTokenException):
            await client.list_image_build_versions(nextToken=first["nextToken"])


async def test_a_build_appearing_between_pages_is_not_served_twice(clock: FakeClock) -> None:
    """Pages continue after the last build served, so a newer build arriving at the
    front shifts nothing (our reading; the model says nothing of consistency)."""
    async with Simulator(scenario(BUILDS), clock=clock) as url, imagebuilder(url) as client:
        clock.advance(45)  # 1-4 started; 5 starts at 50
        first = await client.list_image_build_versions(
            imageVersionArn=WEB_BASE_VERSION, maxResults=2
        )
        clock.advance(10)
        rest = await client.list_image_build_versions(
            imageVersionArn=WEB_BASE_VERSION, maxResults=2, nextToken=first["nextToken"]
        )
    arns = [s["arn"] for p in (first, rest) for s in p["imageSummaryList"]]
    assert arns == [build_arn(n) for n in (4, 3, 2, 1)]


async def test_unknown_filter_name_is_an_invalid_request(clock: FakeClock) -> None:
    async with Simulator(scenario(BUILDS), clock=clock) as url, imagebuilder(url) as client:
        with pytest.raises(client.exceptions.InvalidRequestException) as caught:
            await client.list_image_build_versions(
                imageVersionArn=WEB_BASE_VERSION, filters=[{"name": "colour", "values": ["blue"]}]
            )
    assert (
        "supported filters: name, osVersion, platform, type, version"
        in (caught.value.response["Error"]["Message"])
    )


async def test_each_region_s_endpoint_lists_the_builds_of_that_region_only(
    clock: FakeClock,
) -> None:
    """Image Builder is regional: without imageVersionArn, "every build in your
    account" is every build of the account in the region the client calls. One
    simulator serves every region, so the signed region picks."""
    ireland = f"arn:aws:imagebuilder:eu-west-1:{ACCOUNT}:image/web-base/1.4.0/1"
    builds = [*images_of(1), web_base_image(arn=ireland, pipeline=None)]
    async with Simulator(scenario(builds), clock=clock) as url:
        listed = {}
        for region in ("us-east-1", "eu-west-1", "ap-southeast-2"):
            async with imagebuilder(url, region) as client:
                page = await client.list_image_build_versions()
            listed[region] = [s["arn"] for s in page["imageSummaryList"]]
    assert listed == {"us-east-1": [build_arn(1)], "eu-west-1": [ireland], "ap-southeast-2": []}
