"""The per-operation token bucket answers CallRateLimitExceededException past its rate,
for every simulated operation; injected errors reach every operation too."""

from __future__ import annotations

import aiohttp
import anyio
import pytest

from tests.simulator.helpers import NIGHTLY, raw_call, world
from tests.support import WEB_BASE, imagebuilder, scenario, timeline, web_base_image
from watcher.simulator import Simulator
from watcher.simulator.scenario import OPERATIONS
from watcher.simulator.workflows import execution_id, step_execution_id
from watcher.testing import FakeClock

R = 10  # requests per second the simulator accepts
SECONDS = 30
TICK = 0.1  # the client fires a batch of concurrent requests every tick


@pytest.mark.timeout(120)
async def test_client_firing_five_times_the_limit_gets_about_the_limit(clock: FakeClock) -> None:
    limited = scenario(faults={"rate_limits": {"GetImage": {"rate": R, "burst": R}}})
    simulator = Simulator(limited, clock=clock)
    outcomes: list[str] = []

    async with simulator as url, imagebuilder(url) as client:

        async def call() -> None:
            try:
                await client.get_image(imageBuildVersionArn=WEB_BASE)
                outcomes.append("ok")
            except client.exceptions.CallRateLimitExceededException:
                outcomes.append("throttled")

        for _ in range(int(SECONDS / TICK)):
            async with anyio.create_task_group() as group:
                for _ in range(int(5 * R * TICK)):
                    group.start_soon(call)
            clock.advance(TICK)

    successes_per_second = outcomes.count("ok") / SECONDS
    assert len(outcomes) == 5 * R * SECONDS
    assert abs(successes_per_second - R) <= 0.1 * R
    assert outcomes.count("throttled") == len(outcomes) - outcomes.count("ok")
    assert simulator.counters.injected["GetImage", "rate_limit"] == outcomes.count("throttled")


async def test_limit_applies_per_operation(clock: FakeClock) -> None:
    limited = scenario(faults={"rate_limits": {"ListImageBuildVersions": {"rate": 1, "burst": 1}}})
    async with Simulator(limited, clock=clock) as url, imagebuilder(url) as client:
        for _ in range(5):
            await client.get_image(imageBuildVersionArn=WEB_BASE)
        await client.list_image_build_versions(imageVersionArn=WEB_BASE.rsplit("/", 1)[0])
        with pytest.raises(client.exceptions.CallRateLimitExceededException):
            await client.list_image_build_versions(imageVersionArn=WEB_BASE.rsplit("/", 1)[0])


PARAMS = {
    "GetImage": {"imageBuildVersionArn": WEB_BASE},
    "ListImageBuildVersions": {},
    "GetImagePipeline": {"imagePipelineArn": NIGHTLY},
    "ListImagePipelines": {},
    "ListImagePipelineImages": {"imagePipelineArn": NIGHTLY},
    "StartImagePipelineExecution": {"imagePipelineArn": NIGHTLY, "clientToken": "t"},
    "CancelImageCreation": {"imageBuildVersionArn": WEB_BASE, "clientToken": "t"},
    "ListWorkflowExecutions": {"imageBuildVersionArn": WEB_BASE},
    # The ids of web-base's BUILD workflow (its first phase, seed 0) and first step.
    "ListWorkflowStepExecutions": {"workflowExecutionId": execution_id(0, WEB_BASE, 0)},
    "GetWorkflowExecution": {"workflowExecutionId": execution_id(0, WEB_BASE, 0)},
    "GetWorkflowStepExecution": {"stepExecutionId": step_execution_id(0, WEB_BASE, 0, 0)},
}
# web-base BUILDING from the start, so its BUILD workflow and first step exist at once.
BUILDING_NOW = [web_base_image(timeline=timeline(("BUILDING", 600), ("AVAILABLE", None)))]


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_every_operation_can_be_rate_limited_and_is_counted(
    operation: str, clock: FakeClock
) -> None:
    limited = world(BUILDING_NOW, faults={"rate_limits": {operation: {"rate": 1, "burst": 1}}})
    simulator = Simulator(limited, clock=clock)
    async with simulator as url, aiohttp.ClientSession() as http:
        first = await raw_call(http, url, operation, PARAMS[operation])
        second = await raw_call(http, url, operation, PARAMS[operation])
    assert (first[0], second[0]) == (200, 429)
    assert simulator.counters.requests[operation] == 2
    assert simulator.counters.injected[operation, "rate_limit"] == 1
    assert simulator.counters.outcome("ok", operation) == 1


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_every_operation_can_get_injected_errors(operation: str, clock: FakeClock) -> None:
    faulty = world(BUILDING_NOW, faults={"errors": {"ServiceUnavailableException": 1.0}})
    simulator = Simulator(faulty, clock=clock)
    async with simulator as url, aiohttp.ClientSession() as http:
        status, headers, _ = await raw_call(http, url, operation, PARAMS[operation])
    assert (status, headers["x-amzn-ErrorType"]) == (503, "ServiceUnavailableException")
    assert simulator.counters.injected[operation, "ServiceUnavailableException"] == 1
