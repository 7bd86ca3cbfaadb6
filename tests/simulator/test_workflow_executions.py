"""A build's workflow executions, as ListWorkflowExecutions, ListWorkflowStepExecutions,
GetWorkflowExecution and GetWorkflowStepExecution serve them, through the unmodified
aiobotocore client.

Model facts relied on (botocore's imagebuilder service-2.json): the four operations
are POST /ListWorkflowExecutions, POST /ListWorkflowStepExecutions, GET
/GetWorkflowExecution, GET /GetWorkflowStepExecution; WorkflowType is BUILD, TEST,
DISTRIBUTION; WorkflowExecutionId matches `^wf-<uuid>$` and WorkflowStepExecutionId
`^step-<uuid>$`; ImageFailureContext carries workflowExecutionId, workflowArn,
stepExecutionId, failedStep. That BUILDING runs the BUILD workflow (and so on), the
default steps, and that a step is listed once started are our reading.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tests.support import WEB_BASE, imagebuilder, scenario, timeline, web_base_image
from watcher.simulator import Scenario, Simulator, load_scenario, model
from watcher.testing import FakeClock

DEMO = Path(__file__).parents[2] / "config" / "demo-scenario.toml"
REFERENCE = DEMO.with_name("scenario-reference.toml")
AGENT = "arn:aws:imagebuilder:eu-west-1:123456789012:image/windows-agent/3.1.0/12"
EXECUTION_ID = model.pattern(model.shape("WorkflowExecutionId").metadata["pattern"])
STEP_ID = model.pattern(model.shape("WorkflowStepExecutionId").metadata["pattern"])
UNKNOWN_EXECUTION = "wf-00000000-0000-4000-8000-000000000000"
UNKNOWN_STEP = "step-00000000-0000-4000-8000-000000000000"

# web-base's default timeline (tests.support): BUILDING 120-720s, TESTING 720-1020s.
# BUILD has 4 default steps of 150s each, TEST 3 of 100s each.
TESTS_FAIL = {
    "status": "FAILED",
    "reason": "Image testing failed",
    "failed_step_message": "smoke test: service 'web' did not answer on :80 within 60s",
}
FAILS_IN_TESTING = web_base_image(
    timeline=[*timeline(("BUILDING", 100), ("TESTING", 90)), TESTS_FAIL]
)


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


async def _executions(client: Any, arn: str = WEB_BASE) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = (
        await client.list_workflow_executions(imageBuildVersionArn=arn)
    )["workflowExecutions"]
    return listed


async def _steps(client: Any, execution_id: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = (
        await client.list_workflow_step_executions(workflowExecutionId=execution_id)
    )["steps"]
    return listed


def _running(executions: list[dict[str, Any]]) -> tuple[str, int, int]:
    (running,) = [e for e in executions if e["status"] == "RUNNING"]
    return running["type"], running["totalStepCount"], running["totalStepsSucceeded"]


async def test_a_build_shows_the_running_workflow_and_step_as_it_moves_through_build_and_test(
    clock: FakeClock,
) -> None:
    """No workflow before BUILDING; then the BUILD workflow's steps one after another;
    then BUILD COMPLETED and the TEST workflow running."""
    seen: dict[float, tuple[Any, ...]] = {}
    simulator = Simulator(scenario(), clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        for moment in (30, 150, 300, 600, 750, 850, 990):
            clock.advance(simulator.real_time(moment) - clock.monotonic())
            executions = await _executions(client)
            if not executions:
                seen[moment] = ()
                continue
            current = executions[-1]
            steps = await _steps(client, current["workflowExecutionId"])
            seen[moment] = (
                [e["type"] for e in executions],
                _running(executions),
                [(s["name"], s["action"], s["status"]) for s in steps][-1],
                len(steps),
            )
    assert seen == {
        30: (),
        150: (["BUILD"], ("BUILD", 4, 0), ("LaunchBuildInstance", "LaunchInstance", "RUNNING"), 1),
        300: (
            ["BUILD"],
            ("BUILD", 4, 1),
            ("ApplyBuildComponents", "ExecuteComponents", "RUNNING"),
            2,
        ),
        600: (
            ["BUILD"],
            ("BUILD", 4, 3),
            ("TerminateBuildInstance", "TerminateInstance", "RUNNING"),
            4,
        ),
        750: (
            ["BUILD", "TEST"],
            ("TEST", 3, 0),
            ("LaunchTestInstance", "LaunchInstance", "RUNNING"),
            1,
        ),
        850: (
            ["BUILD", "TEST"],
            ("TEST", 3, 1),
            ("ApplyTestComponents", "ExecuteComponents", "RUNNING"),
            2,
        ),
        990: (
            ["BUILD", "TEST"],
            ("TEST", 3, 2),
            ("TerminateTestInstance", "TerminateInstance", "RUNNING"),
            3,
        ),
    }


async def test_a_finished_workflow_is_completed_with_times_that_follow_the_timeline(
    clock: FakeClock,
) -> None:
    simulator = Simulator(scenario(), clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        clock.advance(simulator.real_time(1100))  # DISTRIBUTING 1020-1140s
        image = (await client.get_image(imageBuildVersionArn=WEB_BASE))["image"]
        build, test, distribution = await _executions(client)
        build_steps = await _steps(client, build["workflowExecutionId"])
    created = image["dateCreated"]
    assert [build["type"], test["type"], distribution["type"]] == ["BUILD", "TEST", "DISTRIBUTION"]
    assert (build["status"], test["status"], distribution["status"]) == (
        "COMPLETED",
        "COMPLETED",
        "RUNNING",
    )
    assert (build["totalStepsSucceeded"], build["totalStepsFailed"]) == (4, 0)
    assert _seconds(created, build["startTime"]) == 120
    assert _seconds(created, build["endTime"]) == 720
    assert test["startTime"] == build["endTime"]
    assert "endTime" not in distribution
    assert [_seconds(created, s["startTime"]) for s in build_steps] == [120, 270, 420, 570]
    assert build_steps[-1]["endTime"] == build["endTime"]
    assert {s["status"] for s in build_steps} == {"COMPLETED"}


async def test_a_build_failed_in_testing_lists_its_failing_step_and_failure_context_matches(
    clock: FakeClock,
) -> None:
    simulator = Simulator(scenario([FAILS_IN_TESTING]), clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        clock.advance(simulator.real_time(500))
        listed = await client.list_workflow_executions(imageBuildVersionArn=WEB_BASE)
        build, test = listed["workflowExecutions"]
        steps = await _steps(client, test["workflowExecutionId"])
        image = (await client.get_image(imageBuildVersionArn=WEB_BASE))["image"]
        got = await client.get_workflow_execution(workflowExecutionId=test["workflowExecutionId"])
        step = await client.get_workflow_step_execution(
            stepExecutionId=steps[-1]["stepExecutionId"]
        )
    # ListWorkflowExecutions.message: "The failure reason for the image build version".
    assert listed["message"] == "Image testing failed"
    assert (build["status"], test["status"]) == ("COMPLETED", "FAILED")
    assert (test["totalStepCount"], test["totalStepsSucceeded"], test["totalStepsFailed"]) == (
        3,
        1,
        1,
    )
    assert [(s["name"], s["status"]) for s in steps] == [
        ("LaunchTestInstance", "COMPLETED"),
        ("ApplyTestComponents", "FAILED"),
    ]  # TerminateTestInstance never started after the failure
    failed = steps[-1]
    assert failed["message"] == TESTS_FAIL["failed_step_message"]
    assert TESTS_FAIL["failed_step_message"] in test["message"]
    context = image["state"]["failureContext"]
    assert context == {
        "imageStatus": "TESTING",
        "workflowExecutionId": test["workflowExecutionId"],
        "workflowArn": test["workflowBuildVersionArn"],
        "stepExecutionId": failed["stepExecutionId"],
        "failedStep": "ApplyTestComponents",
    }
    assert got["status"] == "FAILED"
    assert got["imageBuildVersionArn"] == WEB_BASE
    assert (step["name"], step["status"], step["message"]) == (
        "ApplyTestComponents",
        "FAILED",
        TESTS_FAIL["failed_step_message"],
    )
    assert step["workflowExecutionId"] == test["workflowExecutionId"]
    assert _seconds(failed["startTime"], failed["endTime"]) == 45  # 90s shared by two steps


async def test_scenario_workflow_steps_and_failed_step_shape_the_failure(clock: FakeClock) -> None:
    """The scenario's own steps, durations and messages; the failure_context's explicit
    failedStep wins, and names the step that the lists show failing."""
    testing = {
        "status": "TESTING",
        "duration": 300,
        "workflow_steps": [
            {"name": "LaunchTestInstance", "action": "LaunchInstance", "duration": 30},
            {"name": "RunSmoke", "action": "ExecuteComponents", "message": "running smoke"},
            {"name": "RunLoad", "action": "RunCommand"},
            {"name": "TerminateTestInstance", "action": "TerminateInstance"},
        ],
    }
    failed = {
        "status": "FAILED",
        "reason": "load test failed",
        "failure_context": {
            "failedStep": "RunLoad",
            "componentFailure": {"errorMessage": "p99 latency 2.4s > 1s"},
        },
    }
    image = web_base_image(timeline=[*timeline(("BUILDING", 100)), testing, failed])
    simulator = Simulator(scenario([image]), clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        clock.advance(simulator.real_time(200))  # 100s into TESTING
        _, test = await _executions(client)
        running = await _steps(client, test["workflowExecutionId"])
        clock.advance(simulator.real_time(500) - clock.monotonic())
        _, test = await _executions(client)
        ended = await _steps(client, test["workflowExecutionId"])
        context = (await client.get_image(imageBuildVersionArn=WEB_BASE))["image"]["state"][
            "failureContext"
        ]
    # 30s launch, then the 270s left shared by RunSmoke and RunLoad (135s each).
    assert [(s["name"], s["status"], s.get("message")) for s in running] == [
        ("LaunchTestInstance", "COMPLETED", None),
        ("RunSmoke", "RUNNING", "running smoke"),
    ]
    assert [(s["name"], s["status"]) for s in ended] == [
        ("LaunchTestInstance", "COMPLETED"),
        ("RunSmoke", "COMPLETED"),
        ("RunLoad", "FAILED"),
    ]
    assert ended[-1]["message"] == "p99 latency 2.4s > 1s"  # the component's error
    assert (context["failedStep"], context["stepExecutionId"]) == (
        "RunLoad",
        ended[-1]["stepExecutionId"],
    )
    assert context["componentFailure"] == {"errorMessage": "p99 latency 2.4s > 1s"}


async def test_explicit_failure_context_ids_win(clock: FakeClock) -> None:
    explicit = {
        "workflowExecutionId": "wf-11111111-2222-3333-4444-555555555555",
        "stepExecutionId": "step-11111111-2222-3333-4444-555555555555",
        "failedStep": "SomethingElse",
    }
    image = web_base_image(
        timeline=[
            *timeline(("BUILDING", 100)),
            {"status": "FAILED", "reason": "x", "failure_context": explicit},
        ]
    )
    simulator = Simulator(scenario([image]), clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        clock.advance(simulator.real_time(150))
        context = (await client.get_image(imageBuildVersionArn=WEB_BASE))["image"]["state"][
            "failureContext"
        ]
        (build,) = await _executions(client)
    assert {k: context[k] for k in explicit} == explicit
    assert context["workflowArn"] == build["workflowBuildVersionArn"]  # not given: derived
    assert build["status"] == "FAILED"


async def test_a_cancelled_build_cancels_its_running_workflow_and_step(clock: FakeClock) -> None:
    simulator = Simulator(scenario(), clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        clock.advance(simulator.real_time(300))  # ApplyBuildComponents running
        simulator.cancel_build(WEB_BASE)
        clock.advance(100)
        (build,) = await _executions(client)
        steps = await _steps(client, build["workflowExecutionId"])
        image = (await client.get_image(imageBuildVersionArn=WEB_BASE))["image"]
    assert build["status"] == "CANCELLED"
    assert _seconds(image["dateCreated"], build["endTime"]) == 300
    assert [(s["name"], s["status"]) for s in steps] == [
        ("LaunchBuildInstance", "COMPLETED"),
        ("ApplyBuildComponents", "CANCELLED"),
    ]
    assert steps[-1]["endTime"] == build["endTime"]
    assert "failureContext" not in image["state"]


async def test_the_demo_failing_build_shows_its_failing_step_and_message(clock: FakeClock) -> None:
    demo = Scenario.model_validate({**load_scenario(DEMO).model_dump(), "faults": {}})
    simulator = Simulator(demo, clock=clock)
    async with simulator as url, imagebuilder(url, region="eu-west-1") as client:
        clock.advance(simulator.settled_at())
        executions = await _executions(client, AGENT)
        steps = await _steps(client, executions[-1]["workflowExecutionId"])
        state = (await client.get_image(imageBuildVersionArn=AGENT))["image"]["state"]
    assert [(e["type"], e["status"]) for e in executions] == [
        ("BUILD", "COMPLETED"),
        ("TEST", "FAILED"),
    ]
    assert [(s["name"], s["status"]) for s in steps] == [
        ("LaunchTestInstance", "COMPLETED"),
        ("RunImageTests", "FAILED"),
    ]
    assert "ibagent" in steps[-1]["message"]
    context = state["failureContext"]
    assert context["failedStep"] == "RunImageTests"
    assert context["stepExecutionId"] == steps[-1]["stepExecutionId"]
    assert context["workflowExecutionId"] == executions[-1]["workflowExecutionId"]


async def test_pages_of_steps_and_of_workflows_hold_every_item_once(clock: FakeClock) -> None:
    """maxResults (the model's RestrictedInteger) and nextToken, with short pages on,
    through botocore's own paginators for the two operations."""
    many = {
        "status": "BUILDING",
        "duration": 700,
        "workflow_steps": [{"name": f"Step{n}", "action": "RunCommand"} for n in range(7)],
    }
    image = web_base_image(
        timeline=[many, *timeline(("TESTING", 10), ("DISTRIBUTING", 10), ("AVAILABLE", None))]
    )
    simulator = Simulator(scenario([image], faults={"short_pages": 0.5}, seed=3), clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        clock.advance(simulator.real_time(800))
        workflows: list[dict[str, Any]] = []
        pages = 0
        paginator = client.get_paginator("list_workflow_executions")
        async for page in paginator.paginate(
            imageBuildVersionArn=WEB_BASE, PaginationConfig={"PageSize": 1}
        ):
            workflows += page["workflowExecutions"]
            pages += 1
        steps: list[dict[str, Any]] = []
        paginator = client.get_paginator("list_workflow_step_executions")
        async for page in paginator.paginate(
            workflowExecutionId=workflows[0]["workflowExecutionId"],
            PaginationConfig={"PageSize": 2},
        ):
            steps += page["steps"]
    assert [w["type"] for w in workflows] == ["BUILD", "TEST", "DISTRIBUTION"]
    assert pages >= 3
    assert [s["name"] for s in steps] == [f"Step{n}" for n in range(7)]
    assert len({s["stepExecutionId"] for s in steps}) == 7


async def test_unknown_or_not_yet_started_ids_are_not_found(clock: FakeClock) -> None:
    """The model lists no ResourceNotFoundException for these operations; it is what
    the simulator answers for an unknown build or id (our reading, as for GetImage)."""
    other_build = WEB_BASE.rsplit("/", 1)[0] + "/99"
    simulator = Simulator(scenario(), clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        clock.advance(simulator.real_time(150))  # the BUILD workflow's first step only
        (build,) = await _executions(client)
        not_found = client.exceptions.ResourceNotFoundException
        with pytest.raises(not_found):
            await client.list_workflow_executions(imageBuildVersionArn=other_build)
        with pytest.raises(not_found):
            await client.list_workflow_step_executions(workflowExecutionId=UNKNOWN_EXECUTION)
        with pytest.raises(not_found):
            await client.get_workflow_execution(workflowExecutionId=UNKNOWN_EXECUTION)
        with pytest.raises(not_found):
            await client.get_workflow_step_execution(stepExecutionId=UNKNOWN_STEP)
        with pytest.raises(client.exceptions.InvalidRequestException, match="pattern"):
            await client.get_workflow_execution(workflowExecutionId="wf-not-an-id")
        (first,) = await _steps(client, build["workflowExecutionId"])
    assert EXECUTION_ID.match(build["workflowExecutionId"])
    assert STEP_ID.match(first["stepExecutionId"])


async def test_ids_are_the_same_for_the_same_seed_and_differ_for_another() -> None:
    async def ids(seed: int) -> list[str]:
        clock = FakeClock()
        simulator = Simulator(scenario(seed=seed), clock=clock)
        async with simulator as url, imagebuilder(url) as client:
            clock.advance(simulator.real_time(1100))
            executions = await _executions(client)
            found = [e["workflowExecutionId"] for e in executions]
            for execution in found[:]:
                found += [s["stepExecutionId"] for s in await _steps(client, execution)]
        return found

    first = await ids(5)
    assert first == await ids(5)
    assert len(set(first)) == len(first) == 3 + 4 + 3 + 2  # DISTRIBUTION: both begun
    assert set(first).isdisjoint(await ids(6))


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (
            {
                "status": "PENDING",
                "duration": 60,
                "workflow_steps": [{"name": "Ab", "action": "X1"}],
            },
            "workflow_steps is only for BUILDING, TESTING, DISTRIBUTING",
        ),
        (
            {
                "status": "BUILDING",
                "duration": 60,
                "workflow_steps": [{"name": "Ab", "action": "Xy", "duration": 61}],
            },
            "add up to 61s, more than the 60s BUILDING lasts",
        ),
        (
            {
                "status": "BUILDING",
                "duration": 60,
                "workflow_steps": [{"name": "Ab", "action": "Xy"}, {"name": "Ab", "action": "Z1"}],
            },
            "twice: Ab",
        ),
        (
            {
                "status": "BUILDING",
                "duration": 60,
                "workflow_steps": [{"name": "1x", "action": "X"}],
            },
            "String should match pattern",
        ),
        ({"status": "TESTING", "duration": 60, "failed_step": "Ab"}, "only for a FAILED step"),
    ],
)
def test_workflow_keys_are_checked_when_the_scenario_loads(
    step: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        scenario([web_base_image(timeline=[step, {"status": "AVAILABLE"}])])


def test_failed_step_must_name_a_step_of_the_workflow_before() -> None:
    failed = {"status": "FAILED", "failed_step": "RunTests"}
    with pytest.raises(ValidationError, match="its steps: LaunchTestInstance, ApplyTest"):
        scenario([web_base_image(timeline=[*timeline(("TESTING", 60)), failed])])
    with pytest.raises(ValidationError, match="runs no workflow"):
        scenario([web_base_image(timeline=[*timeline(("PENDING", 60)), failed])])


def test_reference_scenario_documents_every_workflow_key() -> None:
    """config/scenario-reference.toml shows every timeline-step and workflow-step key."""
    reference = load_scenario(REFERENCE)
    steps = [s for image in reference.images for s in image.timeline]
    used = set().union(*(s.model_fields_set for s in steps))
    assert {"workflow_steps", "failed_step", "failed_step_message"} <= used
    workflow_steps = [w for s in steps for w in s.workflow_steps or ()]
    used = set().union(*(w.model_fields_set for w in workflow_steps))
    assert used == set(type(workflow_steps[0]).model_fields)
