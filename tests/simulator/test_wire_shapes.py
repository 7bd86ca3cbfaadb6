"""Every body the simulator sends validates strictly against botocore's shapes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.simulator.helpers import raw_call
from tests.support import WEB_BASE, raw_get_image, raw_list, scenario, web_base_image
from watcher.simulator import Scenario, Simulator, load_scenario, model
from watcher.testing import FakeClock

DEMO = Path(__file__).parents[2] / "config" / "demo-scenario.toml"
UUID = "00000000-0000-4000-8000-000000000000"


def _demo_without_faults(**faults: object) -> Scenario:
    # The demo's builds and pipelines without its faults: these tests are about documents.
    return Scenario.model_validate({**load_scenario(DEMO).model_dump(), "faults": faults})


def _fits(operation: str, status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The parsed body, after checking it against the operation's output shape, or
    for an error, against the error's shape, status and the operation's error list
    (plus ResourceNotFoundException, our reading where the model omits it)."""
    document: dict[str, Any] = json.loads(body)
    if status == 200:
        assert model.violations(document, model.output_shape(operation)) == [], operation
        return document
    code = headers["x-amzn-ErrorType"]
    allowed = {e.name for e in model.operation(operation).error_shapes}
    assert code in allowed | {"ResourceNotFoundException"}, (operation, code)
    assert status == model.error_status(code)
    assert model.violations(document, model.shape(code)) == []
    return document


async def _every_page(
    http: aiohttp.ClientSession,
    url: str,
    operation: str,
    params: dict[str, Any],
    key: str,
    region: str = "us-east-1",
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = _fits(operation, *await raw_call(http, url, operation, params, region=region))
        items += page[key]
        if "nextToken" not in page:
            return items
        params = {**params, "nextToken": page["nextToken"]}


async def test_every_read_of_the_demo_at_every_status_fits_the_model() -> None:
    """Every read operation, every build and pipeline of the demo, every half minute
    of scenario time until it has settled: each body fits the model's shapes."""
    clock = FakeClock()
    simulator = Simulator(_demo_without_faults(short_pages=0.3), clock=clock)
    seen: set[tuple[str, str]] = set()
    async with simulator as url, aiohttp.ClientSession() as http:
        end = simulator.account.settles_by() + 60
        regions = sorted({p.spec.image_parts["region"] for p in simulator.pipelines})
        moment = 0.0
        while moment <= end:
            clock.advance(simulator.real_time(moment) - clock.monotonic())
            for build in list(simulator.catalog):
                for arn in (build.arn, build.version_arn):
                    status, headers, body = await raw_call(
                        http, url, "GetImage", {"imageBuildVersionArn": arn}
                    )
                    document = _fits("GetImage", status, headers, body)
                    if status == 200 and arn == build.arn:
                        seen.add((arn, document["image"]["state"]["status"]))
            summaries: list[dict[str, Any]] = []
            for region in regions:  # each region's endpoint lists that region's own
                summaries += await _every_page(
                    http,
                    url,
                    "ListImageBuildVersions",
                    {"maxResults": 3},
                    "imageSummaryList",
                    region,
                )
                await _every_page(
                    http, url, "ListImagePipelines", {"maxResults": 2}, "imagePipelineList", region
                )
            assert len(summaries) == len(simulator.catalog.visible(moment))
            for pipeline in simulator.pipelines:
                params = {"imagePipelineArn": pipeline.arn}
                _fits("GetImagePipeline", *await raw_call(http, url, "GetImagePipeline", params))
                await _every_page(
                    http,
                    url,
                    "ListImagePipelineImages",
                    {**params, "maxResults": 1},
                    "imageSummaryList",
                )
            moment += 30
    expected = {(b.arn, p.status) for b in simulator.catalog for p in b.phases}
    assert seen == expected
    assert len([b for b in simulator.catalog if b.build_type == "SCHEDULED"]) == 2


async def test_start_and_cancel_bodies_and_their_errors_fit_the_model(clock: FakeClock) -> None:
    # Cancelled at once, so that the second cancel meets an ended build.
    plan = _demo_without_faults().model_copy(update={"cancel_takes": 0.0})
    simulator = Simulator(plan, clock=clock)
    pipeline = next(iter(simulator.pipelines)).arn
    other = list(simulator.pipelines)[1].arn
    cases: list[tuple[str, dict[str, Any], str | None]] = [
        ("StartImagePipelineExecution", {"imagePipelineArn": pipeline, "clientToken": "a"}, None),
        (
            "StartImagePipelineExecution",
            {"imagePipelineArn": other, "clientToken": "a"},
            "IdempotentParameterMismatchException",
        ),
        (
            "StartImagePipelineExecution",
            {"imagePipelineArn": pipeline + "-gone", "clientToken": "b"},
            "ResourceNotFoundException",
        ),
        (
            "StartImagePipelineExecution",
            {"imagePipelineArn": pipeline},
            "InvalidRequestException",
        ),
        ("CancelImageCreation", {"imageBuildVersionArn": "", "clientToken": "c"}, None),
        (
            "CancelImageCreation",
            {"imageBuildVersionArn": "", "clientToken": "d"},
            "ResourceInUseException",
        ),
        (
            "ListImagePipelines",
            {"nextToken": "bm90IGEgdG9rZW4="},
            "InvalidPaginationTokenException",
        ),
    ]
    async with simulator as url, aiohttp.ClientSession() as http:
        for operation, params, error in cases:
            if params.get("imageBuildVersionArn") == "":
                params["imageBuildVersionArn"] = simulator.catalog.visible(0)[0].arn
            status, headers, body = await raw_call(http, url, operation, params)
            _fits(operation, status, headers, body)
            assert headers.get("x-amzn-ErrorType") == error, (operation, body)


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

    def test_walks_pipeline_documents_too(self) -> None:
        document = {"imagePipelineList": [{"status": "PAUSED", "consecutiveFailures": -1}]}
        assert model.violations(document, model.output_shape("ListImagePipelines")) == [
            "imagePipelineList[0].status: 'PAUSED' is not one of PipelineStatus: DISABLED, ENABLED",
            "imagePipelineList[0].consecutiveFailures: -1 value, ConsecutiveFailures needs "
            "at least 0",
        ]


async def test_every_workflow_read_of_the_demo_at_every_status_fits_the_model() -> None:
    """ListWorkflowExecutions, ListWorkflowStepExecutions, GetWorkflowExecution and
    GetWorkflowStepExecution for every build of the demo, every scenario minute until
    it has settled, with short pages: each body fits the model's shapes, and every
    workflow type and every workflow and step status the demo plays is seen."""
    clock = FakeClock()
    simulator = Simulator(_demo_without_faults(short_pages=0.3), clock=clock)
    seen: set[tuple[str, str]] = set()
    async with simulator as url, aiohttp.ClientSession() as http:
        end = simulator.account.settles_by() + 60
        moment = 0.0
        while moment <= end:
            clock.advance(simulator.real_time(moment) - clock.monotonic())
            for build in simulator.catalog.visible(moment):
                executions = await _every_page(
                    http,
                    url,
                    "ListWorkflowExecutions",
                    {"imageBuildVersionArn": build.arn, "maxResults": 1},
                    "workflowExecutions",
                )
                for execution in executions:
                    seen.add((execution["type"], execution["status"]))
                    wanted = {"workflowExecutionId": execution["workflowExecutionId"]}
                    _fits(
                        "GetWorkflowExecution",
                        *await raw_call(http, url, "GetWorkflowExecution", wanted),
                    )
                    steps = await _every_page(
                        http,
                        url,
                        "ListWorkflowStepExecutions",
                        {**wanted, "maxResults": 2},
                        "steps",
                    )
                    for step in steps:
                        seen.add(("step", step["status"]))
                        _fits(
                            "GetWorkflowStepExecution",
                            *await raw_call(
                                http,
                                url,
                                "GetWorkflowStepExecution",
                                {"stepExecutionId": step["stepExecutionId"]},
                            ),
                        )
            moment += 60
        unknown = [  # well-formed ids of nothing (404), and one the pattern refuses (400)
            ("ListWorkflowExecutions", {"imageBuildVersionArn": WEB_BASE + "0"}),
            ("ListWorkflowStepExecutions", {"workflowExecutionId": "wf-" + UUID}),
            ("GetWorkflowExecution", {"workflowExecutionId": "wf-not-a-uuid"}),
            ("GetWorkflowStepExecution", {"stepExecutionId": "step-" + UUID}),
        ]
        for operation, params in unknown:
            status, headers, body = await raw_call(http, url, operation, params)
            assert status in (400, 404), (operation, body)
            _fits(operation, status, headers, body)
    assert {t for t, _ in seen} == {"BUILD", "TEST", "DISTRIBUTION", "step"}
    assert {s for t, s in seen if t != "step"} == {"RUNNING", "COMPLETED", "FAILED", "CANCELLED"}
    assert {s for t, s in seen if t == "step"} == {"RUNNING", "COMPLETED", "FAILED", "CANCELLED"}
