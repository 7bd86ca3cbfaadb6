"""The fields of GetImage's `image` that a real build carries beyond its state and
outputs: workflows, logging, scanning, execution role, distribution, deprecation,
source pipeline; and the response's latestVersionReferences."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.simulator.helpers import NIGHTLY, REGION_PREFIX, world
from tests.support import ACCOUNT, WEB_BASE, imagebuilder, scenario, timeline, web_base_image
from watcher.simulator import Simulator, model
from watcher.testing import FakeClock

EPOCH = FakeClock().now()


async def _image(plan_images: list[dict[str, Any]], clock: FakeClock, t: float) -> dict[str, Any]:
    async with Simulator(scenario(plan_images), clock=clock) as url, imagebuilder(url) as client:
        clock.advance(t)
        image: dict[str, Any] = (
            await client.get_image(imageBuildVersionArn=plan_images[0]["arn"])
        )["image"]
        return image


async def test_a_build_carries_its_workflows(clock: FakeClock) -> None:
    image = await _image([web_base_image()], clock, 0)
    assert image["workflows"] == [
        {"workflowArn": "arn:aws:imagebuilder:us-east-1:aws:workflow/build/build-image/x.x.x"},
        {"workflowArn": "arn:aws:imagebuilder:us-east-1:aws:workflow/test/test-image/x.x.x"},
    ]


async def test_a_build_logs_to_the_default_log_group_of_its_image(clock: FakeClock) -> None:
    """ImageLoggingConfiguration.logGroupName: "If not specified, the log group name
    defaults to /aws/imagebuilder/image-name." """
    image = await _image([web_base_image()], clock, 0)
    assert image["loggingConfiguration"] == {"logGroupName": "/aws/imagebuilder/web-base"}


async def test_a_build_names_its_execution_role_and_scanning(clock: FakeClock) -> None:
    image = await _image([web_base_image()], clock, 0)
    assert image["executionRole"] == (
        f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/imagebuilder.amazonaws.com/"
        "AWSServiceRoleForImageBuilder"
    )
    assert image["imageScanningConfiguration"] == {"imageScanningEnabled": True}


async def test_the_distribution_configuration_covers_every_ami_region(clock: FakeClock) -> None:
    image = await _image([web_base_image()], clock, 0)
    distribution = image["distributionConfiguration"]
    assert distribution["arn"] == f"{REGION_PREFIX}:distribution-configuration/web-base"
    assert [d["region"] for d in distribution["distributions"]] == [
        "us-east-1",
        "eu-west-1",
        "ap-southeast-2",
    ]


async def test_a_container_build_distributes_to_its_ecr_repository(clock: FakeClock) -> None:
    arn = f"{REGION_PREFIX}:image/api-runtime/2.0.3/1"
    uri = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/api-runtime:2.0.3-1"
    docker = {
        "arn": arn,
        "type": "DOCKER",
        "timeline": timeline(("AVAILABLE", None)),
        "containers": [{"region": "us-east-1", "image_uris": [uri]}],
    }
    image = await _image([docker], clock, 0)
    (distribution,) = image["distributionConfiguration"]["distributions"]
    assert distribution["containerDistributionConfiguration"]["targetRepository"] == {
        "service": "ECR",
        "repositoryName": "api-runtime",
    }
    assert image["workflows"][0]["workflowArn"].endswith("/build/build-container/x.x.x")


async def test_the_scan_state_follows_the_build(clock: FakeClock) -> None:
    """ImageScanState: "The scan starts as PENDING and moves through SCANNING and
    COLLECTING to COMPLETED"; which build status goes with which is our reading."""
    seen = []
    async with Simulator(scenario(), clock=clock) as url, imagebuilder(url) as client:
        for moment in (0, 800, 1100, 1200):  # PENDING, TESTING, DISTRIBUTING, AVAILABLE
            clock.advance(moment - clock.monotonic())
            image = (await client.get_image(imageBuildVersionArn=WEB_BASE))["image"]
            seen.append(image["scanState"]["status"])
    assert seen == ["PENDING", "SCANNING", "COLLECTING", "COMPLETED"]


async def test_a_scan_is_abandoned_when_the_build_fails(clock: FakeClock) -> None:
    """ "Image Builder sets the status to ABANDONED if the image reaches a terminal
    state before the scan finding collection completes." """
    failed = web_base_image(timeline=timeline(("BUILDING", 10), ("FAILED", None)))
    image = await _image([failed], clock, 10)
    assert image["scanState"] == {"status": "ABANDONED"}


async def test_deprecation_time_appears_once_the_build_is_deprecated(clock: FakeClock) -> None:
    steps = timeline(("AVAILABLE", 100), ("DEPRECATED", None))
    async with (
        Simulator(scenario([web_base_image(timeline=steps)]), clock=clock) as url,
        imagebuilder(url) as client,
    ):
        available = (await client.get_image(imageBuildVersionArn=WEB_BASE))["image"]
        clock.advance(100)
        deprecated = (await client.get_image(imageBuildVersionArn=WEB_BASE))["image"]
    assert "deprecationTime" not in available
    assert deprecated["deprecationTime"] == EPOCH + timedelta(seconds=100)


async def test_a_deprecation_time_the_scenario_sets_is_served_from_the_start(
    clock: FakeClock,
) -> None:
    """deprecationTime: "This can be a past or future date." """
    image = await _image([web_base_image(deprecation_time="2h")], clock, 0)
    assert image["deprecationTime"] == EPOCH + timedelta(hours=2)


async def test_a_build_of_a_declared_pipeline_names_that_pipeline(clock: FakeClock) -> None:
    async with Simulator(world(), clock=clock) as url, imagebuilder(url) as client:
        image = (await client.get_image(imageBuildVersionArn=WEB_BASE))["image"]
    assert (image["sourcePipelineArn"], image["sourcePipelineName"]) == (
        NIGHTLY,
        "web-base-nightly",
    )


async def test_a_build_without_a_pipeline_has_no_source_pipeline(clock: FakeClock) -> None:
    image = await _image([web_base_image(pipeline=None)], clock, 0)
    assert "sourcePipelineArn" not in image
    assert "sourcePipelineName" not in image


async def test_only_a_failed_build_carries_a_failure_context(clock: FakeClock) -> None:
    """ImageState.failureContext: "Image Builder only sets this property when the
    image status is FAILED"; a cancelled build has a reason and nothing more."""
    simulator = Simulator(scenario(), clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        clock.advance(100)
        simulator.cancel_build(WEB_BASE)
        state = (await client.get_image(imageBuildVersionArn=WEB_BASE))["image"]["state"]
    assert set(state) == {"status", "reason"}


async def test_get_image_names_the_wildcard_arns_of_its_latest_versions(clock: FakeClock) -> None:
    """GetImageResponse.latestVersionReferences: "wildcard version ARNs that always
    reference the latest version of the resource ... overall, and for the latest
    versions within the same major, minor, and patch levels". Each one, asked of
    GetImage, answers that level's newest AVAILABLE build."""
    prefix = f"{REGION_PREFIX}:image/web-base"
    available = timeline(("AVAILABLE", None))
    images = [
        web_base_image(arn=f"{prefix}/1.4.0/7", timeline=available),
        web_base_image(arn=f"{prefix}/1.4.1/1", timeline=available),
        web_base_image(arn=f"{prefix}/1.5.0/2", timeline=available),
        web_base_image(arn=f"{prefix}/2.0.0/1", timeline=available),
    ]
    async with Simulator(scenario(images), clock=clock) as url, imagebuilder(url) as client:
        references = (await client.get_image(imageBuildVersionArn=f"{prefix}/1.4.0/7"))[
            "latestVersionReferences"
        ]
        resolved = {
            key: (await client.get_image(imageBuildVersionArn=arn))["image"]["arn"]
            for key, arn in references.items()
        }
    assert references == {
        "latestVersionArn": f"{prefix}/x.x.x",
        "latestMajorVersionArn": f"{prefix}/1.x.x",
        "latestMinorVersionArn": f"{prefix}/1.4.x",
        "latestPatchVersionArn": f"{prefix}/1.4.0",
    }
    assert resolved == {
        "latestVersionArn": f"{prefix}/2.0.0/1",
        "latestMajorVersionArn": f"{prefix}/1.5.0/2",
        "latestMinorVersionArn": f"{prefix}/1.4.1/1",
        "latestPatchVersionArn": f"{prefix}/1.4.0/7",
    }


async def test_a_build_carries_every_member_of_the_model_s_image_but_two(clock: FakeClock) -> None:
    """An AVAILABLE AMI build of a pipeline, with tags and a deprecation time: every member of
    the installed model's `Image` is served but `containerRecipe` (container builds'
    instead of `imageRecipe`) and `lifecycleExecutionId` (no lifecycle policies in a
    scenario; see watcher/simulator/documents.py). A member a newer botocore adds
    fails here until the simulator serves it or says why not."""
    built = web_base_image(
        timeline=timeline(("AVAILABLE", None)), deprecation_time="30d", tags={"team": "web"}
    )
    async with Simulator(world([built]), clock=clock) as url, imagebuilder(url) as client:
        image = (await client.get_image(imageBuildVersionArn=WEB_BASE))["image"]
    members = set(model.shape("Image").members)
    assert members - set(image) == {"containerRecipe", "lifecycleExecutionId"}
    assert set(image) <= members
