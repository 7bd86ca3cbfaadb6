"""maxResults on every simulated List operation: the model's RestrictedInteger (min 1,
max 25), checked from the request as the service checks it. Sent raw, since botocore
refuses 0 before sending it."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from botocore.model import Shape

from tests.simulator.helpers import NIGHTLY, raw_call, world
from tests.support import WEB_BASE
from watcher.simulator import Simulator, model
from watcher.simulator.scenario import OPERATIONS
from watcher.testing import FakeClock

# Every simulated operation whose input has maxResults, with the other members it
# needs to answer 200.
LISTS: dict[str, dict[str, Any]] = {
    "ListImageBuildVersions": {},
    "ListImagePipelines": {},
    "ListImagePipelineImages": {"imagePipelineArn": NIGHTLY},
    "ListWorkflowExecutions": {"imageBuildVersionArn": WEB_BASE},
    "ListWorkflowStepExecutions": {},  # the workflowExecutionId is looked up first
}


def _max_results(operation: str) -> Shape | None:
    shape = model.operation(operation).input_shape
    return None if shape is None else shape.members.get("maxResults")


def test_every_list_operation_with_max_results_is_covered_and_bounded_1_to_25() -> None:
    paged = {name: shape for name in OPERATIONS if (shape := _max_results(name)) is not None}
    assert set(paged) == set(LISTS)
    for name, shape in paged.items():
        assert (shape.metadata["min"], shape.metadata["max"]) == (1, 25), name


async def _params(http: aiohttp.ClientSession, url: str, operation: str) -> dict[str, Any]:
    if operation != "ListWorkflowStepExecutions":
        return dict(LISTS[operation])
    _, _, body = await raw_call(
        http, url, "ListWorkflowExecutions", {"imageBuildVersionArn": WEB_BASE}
    )
    return {"workflowExecutionId": json.loads(body)["workflowExecutions"][0]["workflowExecutionId"]}


@pytest.mark.parametrize("operation", sorted(LISTS))
async def test_max_results_outside_1_to_25_is_refused_and_the_bounds_are_served(
    operation: str, clock: FakeClock
) -> None:
    outcomes: dict[int, tuple[int, str | None, bytes]] = {}
    async with Simulator(world(), clock=clock) as url, aiohttp.ClientSession() as http:
        clock.advance(600)  # web-base 1.4.0/7 is BUILDING: its first workflow has begun
        params = await _params(http, url, operation)
        for size in (0, 1, 25, 26):
            status, headers, body = await raw_call(
                http, url, operation, {**params, "maxResults": size}
            )
            outcomes[size] = (status, headers.get("x-amzn-ErrorType"), body)
    for size in (0, 26):
        status, code, body = outcomes[size]
        assert (status, code) == (400, "InvalidRequestException"), (size, body)
        assert f"Value '{size}' at 'maxResults' failed to satisfy constraint" in body.decode()
    for size in (1, 25):
        status, code, body = outcomes[size]
        assert (status, code) == (200, None), (size, body)
