"""GetImage as the unmodified aiobotocore client sees it."""

from __future__ import annotations

import aiohttp
import anyio
import botocore.session
import pytest

from tests.support import (
    ACCOUNT,
    WEB_BASE,
    WEB_BASE_TIMELINE,
    WEB_BASE_VERSION,
    imagebuilder,
    scenario,
    timeline,
    web_base_image,
)
from watcher.simulator import Simulator, Step
from watcher.testing import FakeClock


async def test_reads_every_status_of_a_timeline_in_order(clock: FakeClock) -> None:
    seen = []
    async with Simulator(scenario(), clock=clock) as url, imagebuilder(url) as client:
        for step in WEB_BASE_TIMELINE:
            response = await client.get_image(imageBuildVersionArn=WEB_BASE)
            seen.append(response["image"]["state"]["status"])
            clock.advance(step.get("duration", 0))
    assert seen == [step["status"] for step in WEB_BASE_TIMELINE]


async def test_outputs_appear_only_once_available(clock: FakeClock) -> None:
    async with Simulator(scenario(), clock=clock) as url, imagebuilder(url) as client:
        clock.advance(1169)  # one second before INTEGRATING ends
        integrating = (await client.get_image(imageBuildVersionArn=WEB_BASE))["image"]
        clock.advance(1)
        available = (await client.get_image(imageBuildVersionArn=WEB_BASE))["image"]
    assert integrating["state"]["status"] == "INTEGRATING"
    assert "outputResources" not in integrating
    assert available["state"]["status"] == "AVAILABLE"
    assert [(a["region"], a["image"]) for a in available["outputResources"]["amis"]] == [
        ("us-east-1", "ami-0a1b2c3d4e5f60718"),
        ("eu-west-1", "ami-0b2c3d4e5f6071829"),
        ("ap-southeast-2", "ami-0c3d4e5f607182930"),
    ]
    assert {a["accountId"] for a in available["outputResources"]["amis"]} == {ACCOUNT}


async def test_container_build_lists_its_image_uris_when_available(clock: FakeClock) -> None:
    arn = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/api-runtime/2.0.3/1"
    uri = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/api-runtime:2.0.3-1"
    image = {
        "arn": arn,
        "type": "DOCKER",
        "timeline": timeline(("BUILDING", 10), ("AVAILABLE", None)),
        "containers": [{"region": "us-east-1", "image_uris": [uri]}],
    }
    async with Simulator(scenario([image]), clock=clock) as url, imagebuilder(url) as client:
        clock.advance(10)
        got = (await client.get_image(imageBuildVersionArn=arn))["image"]
    assert got["type"] == "DOCKER"
    assert got["containerRecipe"]["containerType"] == "DOCKER"
    assert got["outputResources"] == {"containers": [{"region": "us-east-1", "imageUris": [uri]}]}


async def test_failed_build_carries_reason_and_failure_context(clock: FakeClock) -> None:
    failed = {
        "status": "FAILED",
        "reason": "Image testing failed",
        "failure_context": {
            "failedStep": "RunImageTests",
            "componentFailure": {"stepName": "RunTests", "errorMessage": "exit 1"},
        },
    }
    image = web_base_image(timeline=[*timeline(("BUILDING", 5), ("TESTING", 5)), failed])
    async with Simulator(scenario([image]), clock=clock) as url, imagebuilder(url) as client:
        clock.advance(10)
        state = (await client.get_image(imageBuildVersionArn=WEB_BASE))["image"]["state"]
    # The workflow that failed is added from the build's TEST workflow execution
    # (tests/simulator/test_workflow_executions.py); the scenario's values win.
    ids = {k: state["failureContext"].pop(k) for k in _WORKFLOW_KEYS}
    assert ids["workflowExecutionId"].startswith("wf-")
    assert ids["stepExecutionId"].startswith("step-")
    assert ":workflow/test/" in ids["workflowArn"]
    assert state == {
        "status": "FAILED",
        "reason": "Image testing failed",
        "failureContext": {
            "failedStep": "RunImageTests",
            "componentFailure": {"stepName": "RunTests", "errorMessage": "exit 1"},
            "imageStatus": "TESTING",  # where it failed, filled in from the timeline
        },
    }


_WORKFLOW_KEYS = ("workflowExecutionId", "workflowArn", "stepExecutionId")


async def test_version_arn_returns_the_newest_available_build_not_the_newest_started(
    clock: FakeClock,
) -> None:
    """The model's GetImage.imageBuildVersionArn: "A version or wildcard ARN resolves
    to the latest matching build version that has reached AVAILABLE status."
    Build 8 starts later than 7 and is newer, but only counts once AVAILABLE."""
    newer = web_base_image(arn=WEB_BASE_VERSION + "/8", start=100)
    async with (
        Simulator(scenario([web_base_image(), newer]), clock=clock) as url,
        imagebuilder(url) as client,
    ):
        clock.advance(1200)  # 7 AVAILABLE since 1170; 8 is DISTRIBUTING until 1270
        before = (await client.get_image(imageBuildVersionArn=WEB_BASE_VERSION))["image"]["arn"]
        clock.advance(70)
        after = (await client.get_image(imageBuildVersionArn=WEB_BASE_VERSION))["image"]["arn"]
    assert (before, after) == (WEB_BASE, WEB_BASE_VERSION + "/8")


async def test_version_arn_never_resolves_to_a_build_in_progress(clock: FakeClock) -> None:
    """ "To get an image in any other state, such as a failed or in-progress build,
    specify the full build version ARN." With no AVAILABLE build there is nothing to
    resolve to: ResourceNotFoundException (our reading; GetImage's model error list
    does not even name that error)."""
    async with Simulator(scenario(), clock=clock) as url, imagebuilder(url) as client:
        clock.advance(600)  # BUILDING
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            await client.get_image(imageBuildVersionArn=WEB_BASE_VERSION)
        in_progress = (await client.get_image(imageBuildVersionArn=WEB_BASE))["image"]
    assert in_progress["state"]["status"] == "BUILDING"


async def test_version_arn_never_resolves_to_a_failed_build(clock: FakeClock) -> None:
    failed = web_base_image(timeline=timeline(("BUILDING", 10), ("FAILED", None)))
    async with (
        Simulator(scenario([failed]), clock=clock) as url,
        imagebuilder(url) as client,
    ):
        clock.advance(20)
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            await client.get_image(imageBuildVersionArn=WEB_BASE_VERSION)
        state = (await client.get_image(imageBuildVersionArn=WEB_BASE))["image"]["state"]
    assert state["status"] == "FAILED"


async def test_version_arn_passes_over_a_build_later_deprecated(clock: FakeClock) -> None:
    """ "Builds that were later deprecated, disabled, or deleted don't resolve." """
    older = web_base_image(arn=WEB_BASE_VERSION + "/6", timeline=timeline(("AVAILABLE", None)))
    deprecated = web_base_image(timeline=timeline(("AVAILABLE", 100), ("DEPRECATED", None)))
    async with (
        Simulator(scenario([older, deprecated]), clock=clock) as url,
        imagebuilder(url) as client,
    ):
        newest = (await client.get_image(imageBuildVersionArn=WEB_BASE_VERSION))["image"]["arn"]
        clock.advance(100)
        after = (await client.get_image(imageBuildVersionArn=WEB_BASE_VERSION))["image"]["arn"]
    assert (newest, after) == (WEB_BASE, WEB_BASE_VERSION + "/6")


async def test_build_started_during_a_run_takes_over_the_version_arn_once_available(
    clock: FakeClock,
) -> None:
    """A version ARN resolves to the latest build "that has reached AVAILABLE
    status", so the new build takes over only when it gets there."""
    simulator = Simulator(scenario(), clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        clock.advance(5000)
        new_arn = simulator.start_build(
            WEB_BASE, [Step(status="BUILDING", duration=60), Step(status="AVAILABLE")]
        )
        building = (await client.get_image(imageBuildVersionArn=WEB_BASE_VERSION))["image"]
        new = (await client.get_image(imageBuildVersionArn=new_arn))["image"]
        clock.advance(60)
        newest = (await client.get_image(imageBuildVersionArn=WEB_BASE_VERSION))["image"]
    assert new_arn == WEB_BASE_VERSION + "/8"
    assert building["arn"] == WEB_BASE
    assert (new["version"], new["state"]["status"]) == ("1.4.0/8", "BUILDING")
    assert (newest["arn"], newest["state"]["status"]) == (new_arn, "AVAILABLE")


async def test_version_arn_with_wildcards_resolves_to_the_highest_available_version(
    clock: FakeClock,
) -> None:
    """Latest is our reading of "the latest matching build version": the highest
    semantic version among AVAILABLE builds, then the highest build number."""
    prefix = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/web-base"
    available = timeline(("AVAILABLE", None))
    images = [
        web_base_image(arn=f"{prefix}/1.4.0/7", timeline=available),
        web_base_image(arn=f"{prefix}/1.4.0/6", timeline=available),
        web_base_image(arn=f"{prefix}/1.10.0/1"),  # higher, but PENDING
        web_base_image(arn=f"{prefix}/2.0.0/1", timeline=available),
    ]
    async with Simulator(scenario(images), clock=clock) as url, imagebuilder(url) as client:
        ones = (await client.get_image(imageBuildVersionArn=f"{prefix}/1.x.x"))["image"]["arn"]
        any_ = (await client.get_image(imageBuildVersionArn=f"{prefix}/x.x.x"))["image"]["arn"]
    assert (ones, any_) == (f"{prefix}/1.4.0/7", f"{prefix}/2.0.0/1")


@pytest.mark.parametrize("version", ["x.2.x", "1.x.8", "x.1.x", "x.x.8"])
async def test_a_wildcard_with_a_number_right_of_the_first_x_is_an_invalid_request(
    version: str,
) -> None:
    """The model's pattern (ImageVersionArnOrBuildVersionArn, each node `([0-9]+|x)`)
    takes these; the semantic-versioning guide says `x.2.x` and `1.x.8` are "invalid,
    and produces an error". Which error is our reading: InvalidRequestException, one
    GetImage's model lists, as for the pattern's own failures."""
    arn = WEB_BASE_VERSION.replace("1.4.0", version)
    async with Simulator(scenario()) as url, imagebuilder(url) as client:
        with pytest.raises(client.exceptions.InvalidRequestException) as caught:
            await client.get_image(imageBuildVersionArn=arn)
    assert caught.value.response["Error"]["Message"] == (
        f"Wildcard version {version} in {arn} is invalid: all nodes to the right of the "
        "first wildcard must also be wildcards."
    )
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


async def test_a_version_node_above_two_to_the_thirty_minus_one_is_an_invalid_request() -> None:
    """The guide: each node has "an upper limit of 2^30-1, or 1073741823"."""
    arn = WEB_BASE_VERSION.replace("1.4.0", "1.1073741824.x")
    async with Simulator(scenario()) as url, imagebuilder(url) as client:
        with pytest.raises(client.exceptions.InvalidRequestException) as caught:
            await client.get_image(imageBuildVersionArn=arn)
        # The largest allowed is only not found.
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            await client.get_image(
                imageBuildVersionArn=WEB_BASE_VERSION.replace("1.4.0", "1.1073741823.x")
            )
    assert "has a node above 1073741823" in caught.value.response["Error"]["Message"]


async def test_build_does_not_exist_before_its_start_time(clock: FakeClock) -> None:
    async with (
        Simulator(scenario([web_base_image(start=30)]), clock=clock) as url,
        imagebuilder(url) as client,
    ):
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            await client.get_image(imageBuildVersionArn=WEB_BASE)
        clock.advance(30)
        assert (await client.get_image(imageBuildVersionArn=WEB_BASE))["image"]["arn"] == WEB_BASE


async def test_time_scale_speeds_the_timeline_up(clock: FakeClock) -> None:
    async with Simulator(scenario(time_scale=60), clock=clock) as url, imagebuilder(url) as client:
        # 13 real seconds are 13 scenario minutes: past PENDING, CREATING and BUILDING (12m).
        clock.advance(13)
        state = (await client.get_image(imageBuildVersionArn=WEB_BASE))["image"]["state"]
    assert state["status"] == "TESTING"


async def test_invalid_arn_is_an_invalid_request_naming_the_parameter() -> None:
    async with Simulator(scenario()) as url, imagebuilder(url) as client:
        with pytest.raises(client.exceptions.InvalidRequestException) as caught:
            await client.get_image(
                imageBuildVersionArn="arn:aws:imagebuilder:us-east-1:1:image/Web/1"
            )
    message = caught.value.response["Error"]["Message"]
    assert "at 'imageBuildVersionArn' failed to satisfy constraint" in message
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


async def test_unknown_arn_is_resource_not_found() -> None:
    missing = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/nothing-here/1.0.0/1"
    async with Simulator(scenario()) as url, imagebuilder(url) as client:
        with pytest.raises(client.exceptions.ResourceNotFoundException) as caught:
            await client.get_image(imageBuildVersionArn=missing)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert missing in caught.value.response["Error"]["Message"]


async def test_unsigned_request_is_refused_as_aws_refuses_it() -> None:
    async with (
        Simulator(scenario()) as url,
        aiohttp.ClientSession() as http,
        http.get(f"{url}/GetImage", params={"imageBuildVersionArn": WEB_BASE}) as response,
    ):
        body = await response.json()
    assert response.status == 403
    assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert body == {"message": "Missing Authentication Token"}


async def test_request_signed_for_another_service_is_refused() -> None:
    header = (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/ec2/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=abc"
    )
    headers = {"Authorization": header, "X-Amz-Date": "20260101T000000Z"}
    async with (
        Simulator(scenario()) as url,
        aiohttp.ClientSession() as http,
        http.get(
            f"{url}/GetImage", params={"imageBuildVersionArn": WEB_BASE}, headers=headers
        ) as response,
    ):
        body = await response.json()
    assert response.status == 403
    assert response.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert "'imagebuilder'" in body["message"]


async def test_every_response_carries_a_request_id(clock: FakeClock) -> None:
    async with Simulator(scenario(), clock=clock) as url, imagebuilder(url) as client:
        response = await client.get_image(imageBuildVersionArn=WEB_BASE)
    assert response["requestId"] == response["ResponseMetadata"]["RequestId"]


async def test_unknown_status_is_served_as_its_raw_string(clock: FakeClock) -> None:
    steps = [
        {"status": "QUEUED_FOR_REVIEW", "allow_unknown_status": True, "duration": 10},
        {"status": "AVAILABLE"},
    ]
    async with (
        Simulator(scenario([web_base_image(timeline=steps)]), clock=clock) as url,
        imagebuilder(url) as client,
    ):
        state = (await client.get_image(imageBuildVersionArn=WEB_BASE))["image"]["state"]
    assert state == {"status": "QUEUED_FOR_REVIEW"}


async def test_synchronous_botocore_client_as_the_aws_cli_uses_reads_it_too() -> None:
    """The AWS CLI is built on botocore's synchronous client; it must work unchanged."""

    def call(url: str) -> dict[str, object]:
        client = botocore.session.get_session().create_client(
            "imagebuilder", region_name="us-east-1", endpoint_url=url
        )
        try:
            result: dict[str, object] = client.get_image(imageBuildVersionArn=WEB_BASE)["image"]
            return result
        finally:
            client.close()

    async with Simulator(scenario()) as url:
        image = await anyio.to_thread.run_sync(call, url)
    assert (image["arn"], image["state"]) == (WEB_BASE, {"status": "PENDING"})


async def test_synchronous_botocore_client_resolves_a_version_arn_to_the_newest_available(
    clock: FakeClock,
) -> None:
    """The AWS CLI's way in, on the model's rule: newest AVAILABLE, not newest."""
    images = [
        web_base_image(timeline=timeline(("AVAILABLE", None))),
        web_base_image(arn=WEB_BASE_VERSION + "/8"),  # newer, PENDING
    ]

    def call(url: str) -> dict[str, object]:
        client = botocore.session.get_session().create_client(
            "imagebuilder", region_name="us-east-1", endpoint_url=url
        )
        try:
            result: dict[str, object] = client.get_image(imageBuildVersionArn=WEB_BASE_VERSION)[
                "image"
            ]
            return result
        finally:
            client.close()

    async with Simulator(scenario(images), clock=clock) as url:
        image = await anyio.to_thread.run_sync(call, url)
    assert (image["arn"], image["state"]) == (WEB_BASE, {"status": "AVAILABLE"})
