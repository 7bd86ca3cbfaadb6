"""StartImagePipelineExecution and CancelImageCreation over the wire, and the same
changes made in-process (`Simulator.start_pipeline`, `Simulator.cancel_build`).
A cancellation over the wire lands the scenario's `cancel_takes` later."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.simulator.helpers import (
    API_PIPELINE,
    AVAILABLE_NOW,
    NIGHTLY,
    api_runtime,
    build_arn,
    images_of,
    nightly,
    world,
)
from tests.support import WEB_BASE, imagebuilder, timeline
from watcher.simulator import Simulator, model
from watcher.simulator.account import CANCEL_REASON
from watcher.simulator.scenario import DEFAULT_CANCEL_TAKES, ScenarioError, load_scenario
from watcher.simulator.wire import ApiError
from watcher.testing import FakeClock


async def test_starting_a_pipeline_starts_a_user_initiated_run_now(clock: FakeClock) -> None:
    async with Simulator(world(), clock=clock) as url, imagebuilder(url) as client:
        clock.advance(50)
        started = await client.start_image_pipeline_execution(
            imagePipelineArn=NIGHTLY, clientToken="run-1"
        )
        image = (await client.get_image(imageBuildVersionArn=started["imageBuildVersionArn"]))[
            "image"
        ]
    assert started["imageBuildVersionArn"] == build_arn(8)
    assert started["clientToken"] == "run-1"
    assert started["requestId"] == started["ResponseMetadata"]["RequestId"]
    assert image["buildType"] == "USER_INITIATED"
    assert (image["state"]["status"], image["sourcePipelineArn"]) == ("PENDING", NIGHTLY)
    assert image["dateCreated"] == "2026-01-01T00:00:50.000Z"


async def test_a_disabled_pipeline_can_still_be_started(clock: FakeClock) -> None:
    """StartImagePipelineExecution: "You can start a build this way whether the
    pipeline is enabled or disabled." """
    plan = world(pipelines=[nightly(status="DISABLED")])
    async with Simulator(plan, clock=clock) as url, imagebuilder(url) as client:
        started = await client.start_image_pipeline_execution(
            imagePipelineArn=NIGHTLY, clientToken="run-1"
        )
    assert started["imageBuildVersionArn"] == build_arn(8)


async def test_a_started_run_carries_the_request_tags(clock: FakeClock) -> None:
    """imageTags: "Builds that you start manually use the tags from the
    StartImagePipelineExecution request instead." """
    plan = world(pipelines=[nightly(tags={"team": "platform"})])
    async with Simulator(plan, clock=clock) as url, imagebuilder(url) as client:
        with_tags = await client.start_image_pipeline_execution(
            imagePipelineArn=NIGHTLY, clientToken="a", tags={"ticket": "OPS-1"}
        )
        without = await client.start_image_pipeline_execution(
            imagePipelineArn=NIGHTLY, clientToken="b"
        )
        tagged = await client.get_image(imageBuildVersionArn=with_tags["imageBuildVersionArn"])
        untagged = await client.get_image(imageBuildVersionArn=without["imageBuildVersionArn"])
    assert tagged["image"]["tags"] == {"ticket": "OPS-1"}
    assert "tags" not in untagged["image"]


async def test_the_same_client_token_returns_the_original_build_and_starts_none(
    clock: FakeClock,
) -> None:
    """clientToken: "If you retry a request with the same client token, Image Builder
    returns the original response without running the operation again." """
    simulator = Simulator(world(), clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        first = await client.start_image_pipeline_execution(
            imagePipelineArn=NIGHTLY, clientToken="same"
        )
        clock.advance(30)
        again = await client.start_image_pipeline_execution(
            imagePipelineArn=NIGHTLY, clientToken="same"
        )
    assert again["imageBuildVersionArn"] == first["imageBuildVersionArn"] == build_arn(8)
    assert again["clientToken"] == "same"
    assert sorted(b.arn for b in simulator.catalog) == [build_arn(7), build_arn(8)]


async def test_the_same_client_token_for_another_pipeline_is_a_parameter_mismatch(
    clock: FakeClock,
) -> None:
    plan = world(pipelines=[nightly(), api_runtime()])
    async with Simulator(plan, clock=clock) as url, imagebuilder(url) as client:
        await client.start_image_pipeline_execution(imagePipelineArn=NIGHTLY, clientToken="t")
        with pytest.raises(client.exceptions.IdempotentParameterMismatchException) as caught:
            await client.start_image_pipeline_execution(
                imagePipelineArn=API_PIPELINE, clientToken="t"
            )
    status = caught.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert status == model.error_status("IdempotentParameterMismatchException") == 400


async def test_botocore_fills_in_a_client_token_so_each_call_starts_a_run(
    clock: FakeClock,
) -> None:
    """clientToken is an idempotencyToken in the model: botocore generates one."""
    async with Simulator(world(), clock=clock) as url, imagebuilder(url) as client:
        first = await client.start_image_pipeline_execution(imagePipelineArn=NIGHTLY)
        second = await client.start_image_pipeline_execution(imagePipelineArn=NIGHTLY)
    assert (first["imageBuildVersionArn"], second["imageBuildVersionArn"]) == (
        build_arn(8),
        build_arn(9),
    )


async def test_starting_an_unknown_pipeline_is_resource_not_found(clock: FakeClock) -> None:
    async with Simulator(world(), clock=clock) as url, imagebuilder(url) as client:
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            await client.start_image_pipeline_execution(
                imagePipelineArn=API_PIPELINE, clientToken="t"
            )


async def status_of(client: Any, arn: str = WEB_BASE) -> dict[str, Any]:
    state: dict[str, Any] = (await client.get_image(imageBuildVersionArn=arn))["image"]["state"]
    return state


async def test_cancel_returns_at_once_and_the_build_keeps_its_status_until_it_lands(
    clock: FakeClock,
) -> None:
    """The model: "Cancellation is asynchronous: the request returns immediately, then
    Image Builder stops the running build and moves the image to the CANCELLED state."
    Here after the scenario's `cancel_takes`, 30 s by default (our reading)."""
    async with Simulator(world(), clock=clock) as url, imagebuilder(url) as client:
        clock.advance(200)  # BUILDING
        cancelled = await client.cancel_image_creation(
            imageBuildVersionArn=WEB_BASE, clientToken="c"
        )
        right_after = await status_of(client)
        clock.advance(DEFAULT_CANCEL_TAKES - 0.5)
        just_before = await status_of(client)
        clock.advance(0.5)
        landed = await status_of(client)
        clock.advance(5000)
        later = await status_of(client)
    assert (cancelled["imageBuildVersionArn"], cancelled["clientToken"]) == (WEB_BASE, "c")
    assert right_after["status"] == just_before["status"] == "BUILDING"
    assert landed == later == {"status": "CANCELLED", "reason": CANCEL_REASON}
    assert DEFAULT_CANCEL_TAKES > 0


@pytest.mark.parametrize(("setting", "seconds"), [("2m", 120.0), (0, 0.0), ("250ms", 0.25)])
async def test_how_long_a_cancellation_takes_is_the_scenario_s_cancel_takes(
    clock: FakeClock, setting: str | int, seconds: float
) -> None:
    simulator = Simulator(world(cancel_takes=setting), clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        clock.advance(200)
        await client.cancel_image_creation(imageBuildVersionArn=WEB_BASE, clientToken="c")
        at_once = await status_of(client)
    assert simulator.entered_at(WEB_BASE, "CANCELLED") == 200 + seconds
    assert at_once["status"] == ("CANCELLED" if seconds == 0 else "BUILDING")


async def test_a_build_that_ends_before_the_cancellation_lands_keeps_its_end(
    clock: FakeClock,
) -> None:
    """Our reading: the build was stopping anyway, and its AMIs exist."""
    plan = world(images_of(7, timeline=timeline(("BUILDING", 10), ("AVAILABLE", None))))
    simulator = Simulator(plan, clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        await client.cancel_image_creation(imageBuildVersionArn=WEB_BASE, clientToken="c")
        clock.advance(60)
        state = await status_of(client)
    assert state["status"] == "AVAILABLE"
    assert simulator.entered_at(WEB_BASE, "CANCELLED") is None


async def test_a_second_cancellation_while_one_is_under_way_changes_nothing(
    clock: FakeClock,
) -> None:
    simulator = Simulator(world(), clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        clock.advance(200)
        await client.cancel_image_creation(imageBuildVersionArn=WEB_BASE, clientToken="a")
        clock.advance(20)
        again = await client.cancel_image_creation(imageBuildVersionArn=WEB_BASE, clientToken="b")
    assert again["imageBuildVersionArn"] == WEB_BASE
    assert simulator.entered_at(WEB_BASE, "CANCELLED") == 200 + DEFAULT_CANCEL_TAKES


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ('"-5s"', "a duration cannot be negative"),
        ('"soon"', "expected a duration such as"),
        ("inf", "cancel_takes must be a finite duration"),
        ("true", "expected a duration such as"),
    ],
)
def test_a_bad_cancel_takes_is_refused_at_load_naming_the_key(
    tmp_path: Path, value: str, says: str
) -> None:
    path = tmp_path / "scenario.toml"
    path.write_text(f"cancel_takes = {value}\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert "cancel_takes" in str(caught.value)
    assert says in str(caught.value)


async def test_cancelling_a_terminal_build_is_resource_in_use(clock: FakeClock) -> None:
    """ "This operation can only be used on images in a non-terminal state"; the
    error for it is our reading of the model's error list."""
    plan = world(images_of(7, timeline=AVAILABLE_NOW))
    async with Simulator(plan, clock=clock) as url, imagebuilder(url) as client:
        with pytest.raises(client.exceptions.ResourceInUseException) as caught:
            await client.cancel_image_creation(imageBuildVersionArn=WEB_BASE, clientToken="c")
    assert "AVAILABLE" in caught.value.response["Error"]["Message"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


async def test_cancel_retried_with_its_client_token_returns_the_original_response(
    clock: FakeClock,
) -> None:
    async with Simulator(world(), clock=clock) as url, imagebuilder(url) as client:
        first = await client.cancel_image_creation(imageBuildVersionArn=WEB_BASE, clientToken="c")
        again = await client.cancel_image_creation(imageBuildVersionArn=WEB_BASE, clientToken="c")
    assert again["imageBuildVersionArn"] == first["imageBuildVersionArn"] == WEB_BASE


async def test_cancel_with_a_used_client_token_for_another_build_is_a_mismatch(
    clock: FakeClock,
) -> None:
    async with Simulator(world(images_of(7, 8)), clock=clock) as url, imagebuilder(url) as client:
        await client.cancel_image_creation(imageBuildVersionArn=build_arn(7), clientToken="c")
        with pytest.raises(client.exceptions.IdempotentParameterMismatchException):
            await client.cancel_image_creation(imageBuildVersionArn=build_arn(8), clientToken="c")


async def test_cancelling_an_unknown_build_is_resource_not_found(clock: FakeClock) -> None:
    """CancelImageCreation's model error list does not name ResourceNotFoundException
    either; our reading."""
    async with Simulator(world(), clock=clock) as url, imagebuilder(url) as client:
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            await client.cancel_image_creation(imageBuildVersionArn=build_arn(99), clientToken="c")


async def test_a_version_arn_cannot_be_cancelled(clock: FakeClock) -> None:
    """The model's ImageBuildVersionArn pattern needs the build number."""
    async with Simulator(world(), clock=clock) as url, imagebuilder(url) as client:
        with pytest.raises(client.exceptions.InvalidRequestException) as caught:
            await client.cancel_image_creation(
                imageBuildVersionArn=WEB_BASE.rsplit("/", 1)[0], clientToken="c"
            )
    assert (
        "at 'imageBuildVersionArn' failed to satisfy constraint"
        in (caught.value.response["Error"]["Message"])
    )


async def test_start_pipeline_in_process_is_the_endpoint_s_logic(clock: FakeClock) -> None:
    simulator = Simulator(world(), clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        clock.advance(10)
        arn = simulator.start_pipeline(NIGHTLY, client_token="t")
        again = simulator.start_pipeline(NIGHTLY, client_token="t")
        over_the_wire = await client.start_image_pipeline_execution(
            imagePipelineArn=NIGHTLY, clientToken="t"
        )
        image = (await client.get_image(imageBuildVersionArn=arn))["image"]
    assert arn == again == over_the_wire["imageBuildVersionArn"] == build_arn(8)
    assert (image["buildType"], image["state"]["status"]) == ("USER_INITIATED", "PENDING")


async def test_start_pipeline_in_process_raises_the_endpoint_s_errors(clock: FakeClock) -> None:
    simulator = Simulator(world(), clock=clock)
    async with simulator:
        with pytest.raises(ApiError) as caught:
            simulator.start_pipeline(API_PIPELINE)
    assert caught.value.code == "ResourceNotFoundException"


async def test_cancel_build_in_process_ends_the_build_now(clock: FakeClock) -> None:
    simulator = Simulator(world(), clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        clock.advance(100)
        simulator.cancel_build(WEB_BASE)
        state = (await client.get_image(imageBuildVersionArn=WEB_BASE))["image"]["state"]
    assert state["status"] == "CANCELLED"
    assert simulator.entered_at(WEB_BASE, "CANCELLED") == 100
    assert simulator.entered_at(WEB_BASE, "AVAILABLE") is None
    assert simulator.settled_at() == 100


async def test_cancel_build_in_process_refuses_a_terminal_build(clock: FakeClock) -> None:
    simulator = Simulator(world(), clock=clock)
    async with simulator:
        simulator.cancel_build(WEB_BASE)
        with pytest.raises(ApiError) as caught:
            simulator.cancel_build(WEB_BASE)
    assert caught.value.code == "ResourceInUseException"
