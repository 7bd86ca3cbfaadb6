"""Every body the simulator sends validates strictly against botocore's shapes."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from tests.support import WEB_BASE, raw_get_image, raw_list, scenario, web_base_image
from watcher.simulator import Scenario, Simulator, load_scenario, model
from watcher.testing import FakeClock

DEMO = Path(__file__).parents[2] / "config" / "demo-scenario.toml"


async def test_get_image_bodies_of_every_demo_build_at_every_status_fit_the_model() -> None:
    # The demo's builds without its faults: this test is about the documents.
    demo = Scenario.model_validate({**load_scenario(DEMO).model_dump(), "faults": {}})
    clock = FakeClock()
    simulator = Simulator(demo, clock=clock)
    checked: set[tuple[str, str]] = set()
    async with simulator as url, aiohttp.ClientSession() as http:
        # Visit the middle of every phase of every build.
        moments = sorted(
            {
                (p.begins + (p.ends if p.ends is not None else p.begins + 60)) / 2
                for b in simulator.catalog
                for p in b.phases
            }
        )
        for moment in moments:
            clock.advance(simulator.real_time(moment) - clock.monotonic())
            for build in simulator.catalog:
                status, _, body = await raw_get_image(http, url, build.arn)
                if status == 404:
                    continue
                document = json.loads(body)
                assert model.violations(document, model.output_shape("GetImage")) == []
                checked.add((build.arn, document["image"]["state"]["status"]))
    expected = {(b.arn, p.status) for b in simulator.catalog for p in b.phases}
    assert checked == expected


async def test_list_image_build_versions_bodies_fit_the_model(clock: FakeClock) -> None:
    images = [web_base_image(arn=WEB_BASE.rsplit("/", 1)[0] + f"/{n}") for n in (1, 2, 3)]
    async with Simulator(scenario(images), clock=clock) as url, aiohttp.ClientSession() as http:
        clock.advance(2000)  # AVAILABLE, so outputs are included
        _, _, body = await raw_list(
            http, url, {"imageVersionArn": WEB_BASE.rsplit("/", 1)[0], "maxResults": 2}
        )
    document = json.loads(body)
    assert model.violations(document, model.output_shape("ListImageBuildVersions")) == []
    assert "nextToken" in document
    assert document["imageSummaryList"][0]["outputResources"]["amis"]


@pytest.mark.parametrize(
    "faults",
    [{"errors": {"ServiceException": 1.0}}, {"rate_limits": {"GetImage": {"rate": 1, "burst": 1}}}],
)
async def test_error_bodies_fit_their_error_shape(
    faults: dict[str, object], clock: FakeClock
) -> None:
    async with (
        Simulator(scenario(faults=faults), clock=clock) as url,
        aiohttp.ClientSession() as http,
    ):
        await raw_get_image(http, url, WEB_BASE)
        status, headers, body = await raw_get_image(http, url, WEB_BASE)
    code = headers["x-amzn-ErrorType"]
    assert status == model.error_status(code)
    assert model.violations(json.loads(body), model.shape(code)) == []


class TestShapeWalker:
    """The walker used above must itself catch what it exists to catch."""

    shape = model.output_shape("GetImage")

    def test_rejects_a_field_the_model_lacks(self) -> None:
        problems = model.violations({"image": {"arn": WEB_BASE, "colour": "blue"}}, self.shape)
        assert problems == ["image.colour: not a member of Image"]

    def test_rejects_a_value_of_the_wrong_type(self) -> None:
        problems = model.violations({"image": {"enhancedImageMetadataEnabled": "yes"}}, self.shape)
        assert problems == ["image.enhancedImageMetadataEnabled: expected a boolean, got 'yes'"]

    def test_rejects_an_unknown_enum_value_unless_told_to_allow_it(self) -> None:
        document = {"image": {"state": {"status": "QUEUED"}}}
        assert model.violations(document, self.shape) == [
            "image.state.status: 'QUEUED' is not one of ImageStatus: "
            + ", ".join(model.shape("ImageStatus").enum)
        ]
        assert model.violations(document, self.shape, known_enums=False) == []

    def test_rejects_a_string_outside_its_pattern(self) -> None:
        problems = model.violations({"image": {"arn": "not-an-arn"}}, self.shape)
        assert problems == ["image.arn: 'not-an-arn' does not match the pattern of ImageBuilderArn"]

    def test_rejects_a_list_where_an_object_belongs_and_walks_into_lists(self) -> None:
        document = {"image": {"outputResources": {"amis": [{"region": 3}]}, "state": []}}
        assert model.violations(document, self.shape) == [
            "image.outputResources.amis[0].region: expected a string for NonEmptyString, got 3",
            "image.state: expected an object for ImageState, got list",
        ]
