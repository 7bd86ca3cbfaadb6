"""GetImagePipeline, ListImagePipelines and ListImagePipelineImages as the
unmodified aiobotocore client sees them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.simulator.helpers import (
    API_PIPELINE,
    NIGHTLY,
    REGION_PREFIX,
    api_runtime,
    build_arn,
    images_of,
    nightly,
    world,
)
from tests.support import WEB_BASE, WEB_BASE_VERSION, imagebuilder, web_base_image
from watcher.simulator import Simulator
from watcher.testing import FakeClock

EPOCH = FakeClock().now()


def at(seconds: float) -> str:
    moment = EPOCH + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


async def test_get_image_pipeline_describes_the_pipeline(clock: FakeClock) -> None:
    async with Simulator(world(), clock=clock) as url, imagebuilder(url) as client:
        pipeline = (await client.get_image_pipeline(imagePipelineArn=NIGHTLY))["imagePipeline"]
    resource = f"{REGION_PREFIX}:{{}}/web-base"
    assert pipeline["arn"] == NIGHTLY
    assert pipeline["name"] == "web-base-nightly"
    assert pipeline["platform"] == "Linux"
    assert pipeline["imageRecipeArn"] == resource.format("image-recipe") + "/1.4.0"
    assert pipeline["infrastructureConfigurationArn"] == resource.format(
        "infrastructure-configuration"
    )
    assert pipeline["distributionConfigurationArn"] == resource.format("distribution-configuration")
    assert pipeline["imageTestsConfiguration"] == {"imageTestsEnabled": True, "timeoutMinutes": 720}
    assert (pipeline["status"], pipeline["consecutiveFailures"]) == ("ENABLED", 0)
    assert pipeline["dateCreated"] == pipeline["dateUpdated"] == at(0)
    assert pipeline["loggingConfiguration"] == {
        "imageLogGroupName": "/aws/imagebuilder/web-base",
        "pipelineLogGroupName": "/aws/imagebuilder/pipeline/web-base-nightly",
    }
    assert "schedule" not in pipeline
    assert "dateNextRun" not in pipeline


async def test_a_container_pipeline_names_its_container_recipe(clock: FakeClock) -> None:
    async with (
        Simulator(world(pipelines=[api_runtime()]), clock=clock) as url,
        imagebuilder(url) as client,
    ):
        pipeline = (await client.get_image_pipeline(imagePipelineArn=API_PIPELINE))["imagePipeline"]
    assert pipeline["containerRecipeArn"] == f"{REGION_PREFIX}:container-recipe/api-runtime/2.0.3"
    assert "imageRecipeArn" not in pipeline


async def test_a_scheduled_pipeline_serves_its_schedule_as_a_rate_expression(
    clock: FakeClock,
) -> None:
    plan = world(pipelines=[nightly(schedule={"every": "30m"}, auto_disable_after=3)])
    async with Simulator(plan, clock=clock) as url, imagebuilder(url) as client:
        pipeline = (await client.get_image_pipeline(imagePipelineArn=NIGHTLY))["imagePipeline"]
    assert pipeline["schedule"] == {
        "scheduleExpression": "rate(30 minutes)",
        "pipelineExecutionStartCondition": "EXPRESSION_MATCH_ONLY",
        "autoDisablePolicy": {"failureCount": 3},
    }


async def test_last_run_is_the_newest_run_and_its_status_now(clock: FakeClock) -> None:
    """dateLastRun: "The date on which this image pipeline was last run";
    lastRunStatus: "The status of the last image that this pipeline built"."""
    images = [web_base_image(), web_base_image(arn=build_arn(8), start=100)]
    async with Simulator(world(images), clock=clock) as url, imagebuilder(url) as client:
        first = (await client.get_image_pipeline(imagePipelineArn=NIGHTLY))["imagePipeline"]
        clock.advance(1300)
        later = (await client.get_image_pipeline(imagePipelineArn=NIGHTLY))["imagePipeline"]
    assert (first["dateLastRun"], first["lastRunStatus"]) == (at(0), "PENDING")
    assert (later["dateLastRun"], later["lastRunStatus"]) == (at(100), "AVAILABLE")


async def test_a_pipeline_never_run_has_no_last_run(clock: FakeClock) -> None:
    async with (
        Simulator(world(pipelines=[api_runtime()]), clock=clock) as url,
        imagebuilder(url) as client,
    ):
        pipeline = (await client.get_image_pipeline(imagePipelineArn=API_PIPELINE))["imagePipeline"]
    assert "dateLastRun" not in pipeline
    assert "lastRunStatus" not in pipeline


async def test_next_run_is_the_next_scheduled_moment(clock: FakeClock) -> None:
    plan = world(pipelines=[nightly(schedule={"every": "30m", "first": "5m"})])
    async with Simulator(plan, clock=clock) as url, imagebuilder(url) as client:
        before = (await client.get_image_pipeline(imagePipelineArn=NIGHTLY))["imagePipeline"]
        clock.advance(300)
        after = (await client.get_image_pipeline(imagePipelineArn=NIGHTLY))["imagePipeline"]
    assert before["dateNextRun"] == at(300)
    assert after["dateNextRun"] == at(300 + 1800)
    assert (after["dateLastRun"], after["lastRunStatus"]) == (at(300), "PENDING")


async def test_a_disabled_pipeline_has_no_next_run(clock: FakeClock) -> None:
    """PipelineStatus: "A disabled pipeline doesn't run on its schedule"."""
    plan = world(pipelines=[nightly(schedule={"every": "30m"}, status="DISABLED")])
    async with Simulator(plan, clock=clock) as url, imagebuilder(url) as client:
        pipeline = (await client.get_image_pipeline(imagePipelineArn=NIGHTLY))["imagePipeline"]
    assert pipeline["status"] == "DISABLED"
    assert "dateNextRun" not in pipeline


async def test_a_schedule_that_has_ended_has_no_next_run(clock: FakeClock) -> None:
    plan = world(pipelines=[nightly(schedule={"every": "30m", "first": 0, "until": "30m"})])
    async with Simulator(plan, clock=clock) as url, imagebuilder(url) as client:
        clock.advance(1800)
        pipeline = (await client.get_image_pipeline(imagePipelineArn=NIGHTLY))["imagePipeline"]
    assert "dateNextRun" not in pipeline
    assert pipeline["dateLastRun"] == at(1800)


async def test_unknown_pipeline_is_resource_not_found(clock: FakeClock) -> None:
    """GetImagePipeline's model error list does not name ResourceNotFoundException;
    it is the service's error for a missing resource all the same (our reading)."""
    async with Simulator(world(), clock=clock) as url, imagebuilder(url) as client:
        with pytest.raises(client.exceptions.ResourceNotFoundException) as caught:
            await client.get_image_pipeline(imagePipelineArn=API_PIPELINE)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


async def test_an_invalid_pipeline_arn_is_an_invalid_request(clock: FakeClock) -> None:
    async with Simulator(world(), clock=clock) as url, imagebuilder(url) as client:
        with pytest.raises(client.exceptions.InvalidRequestException) as caught:
            await client.get_image_pipeline(imagePipelineArn=WEB_BASE)
    assert (
        "at 'imagePipelineArn' failed to satisfy constraint"
        in (caught.value.response["Error"]["Message"])
    )


async def test_a_pipeline_does_not_exist_before_it_is_created(clock: FakeClock) -> None:
    plan = world([], [nightly(created=60)])
    async with Simulator(plan, clock=clock) as url, imagebuilder(url) as client:
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            await client.get_image_pipeline(imagePipelineArn=NIGHTLY)
        before = (await client.list_image_pipelines())["imagePipelineList"]
        clock.advance(60)
        after = (await client.list_image_pipelines())["imagePipelineList"]
    assert (before, [p["arn"] for p in after]) == ([], [NIGHTLY])


async def test_list_image_pipelines_lists_the_same_documents_newest_first(
    clock: FakeClock,
) -> None:
    plan = world(pipelines=[nightly(), api_runtime(created=10)])
    async with Simulator(plan, clock=clock) as url, imagebuilder(url) as client:
        clock.advance(10)
        listed = (await client.list_image_pipelines())["imagePipelineList"]
        got = (await client.get_image_pipeline(imagePipelineArn=NIGHTLY))["imagePipeline"]
    assert [p["arn"] for p in listed] == [API_PIPELINE, NIGHTLY]
    assert listed[1] == got


@pytest.mark.parametrize(
    ("name", "values", "expected"),
    [
        ("name", ["api-runtime"], [API_PIPELINE]),
        ("status", ["DISABLED"], [API_PIPELINE]),
        ("status", ["ENABLED", "DISABLED"], [API_PIPELINE, NIGHTLY]),
        ("imageRecipeArn", [f"{REGION_PREFIX}:image-recipe/web-base/1.4.0"], [NIGHTLY]),
    ],
)
async def test_list_image_pipelines_filters(
    name: str, values: list[str], expected: list[str], clock: FakeClock
) -> None:
    plan = world(pipelines=[nightly(), api_runtime(status="DISABLED")])
    async with Simulator(plan, clock=clock) as url, imagebuilder(url) as client:
        listed = await client.list_image_pipelines(filters=[{"name": name, "values": values}])
    assert sorted(p["arn"] for p in listed["imagePipelineList"]) == sorted(expected)


async def test_list_image_pipelines_refuses_an_unknown_filter_naming_the_supported_ones(
    clock: FakeClock,
) -> None:
    async with Simulator(world(), clock=clock) as url, imagebuilder(url) as client:
        with pytest.raises(client.exceptions.InvalidRequestException) as caught:
            await client.list_image_pipelines(filters=[{"name": "platform", "values": ["Linux"]}])
    assert (
        "supported filters: description, distributionConfigurationArn, imageRecipeArn"
        in (caught.value.response["Error"]["Message"])
    )


async def test_list_image_pipeline_images_lists_the_pipeline_runs_newest_first(
    clock: FakeClock,
) -> None:
    """An [[images]] build naming the pipeline is one of its runs; another image's
    build is not."""
    other = {
        "arn": f"{REGION_PREFIX}:image/api-runtime/2.0.3/1",
        "timeline": [{"status": "PENDING"}],
    }
    plan = world(
        [*images_of(7), other, web_base_image(arn=build_arn(6), pipeline=None)],
        [nightly(schedule={"every": "1m", "first": "1m"})],
    )
    async with Simulator(plan, clock=clock) as url, imagebuilder(url) as client:
        clock.advance(120)
        page = await client.list_image_pipeline_images(imagePipelineArn=NIGHTLY)
    summaries = page["imageSummaryList"]
    assert [s["arn"] for s in summaries] == [build_arn(9), build_arn(8), build_arn(7)]
    assert [s["buildType"] for s in summaries] == ["SCHEDULED", "SCHEDULED", "USER_INITIATED"]


async def test_list_image_pipeline_images_filters_by_version(clock: FakeClock) -> None:
    newer = web_base_image(arn=WEB_BASE_VERSION.replace("1.4.0", "1.5.0") + "/1")
    async with (
        Simulator(world([*images_of(7), newer]), clock=clock) as url,
        imagebuilder(url) as client,
    ):
        page = await client.list_image_pipeline_images(
            imagePipelineArn=NIGHTLY, filters=[{"name": "version", "values": ["1.5.0"]}]
        )
    assert [s["arn"] for s in page["imageSummaryList"]] == [newer["arn"]]


async def test_list_image_pipeline_images_of_an_unknown_pipeline_is_resource_not_found(
    clock: FakeClock,
) -> None:
    """ListImagePipelineImages' model error list does name ResourceNotFoundException."""
    async with Simulator(world(), clock=clock) as url, imagebuilder(url) as client:
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            await client.list_image_pipeline_images(imagePipelineArn=API_PIPELINE)


async def test_each_region_s_endpoint_lists_the_pipelines_of_that_region_only(
    clock: FakeClock,
) -> None:
    """ListImagePipelines: "the image pipelines in your account" are those of the
    region the client calls (Image Builder is regional)."""
    ireland = NIGHTLY.replace("us-east-1", "eu-west-1") + "-ie"
    pipelines = [
        nightly(),
        nightly(arn=ireland, image=WEB_BASE_VERSION.replace("us-east-1", "eu-west-1")),
    ]
    async with Simulator(world([], pipelines), clock=clock) as url:
        listed = {}
        for region in ("us-east-1", "eu-west-1"):
            async with imagebuilder(url, region) as client:
                page = await client.list_image_pipelines()
            listed[region] = [p["arn"] for p in page["imagePipelineList"]]
    assert listed == {"us-east-1": [NIGHTLY], "eu-west-1": [ireland]}
