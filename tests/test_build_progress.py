"""`ProgressLookups` on cases the simulator does not model: steps listed in another
order, a gap between two steps, a workflow over while its status is not, parallel
test groups, a throttle, a slow answer, and look-ups racing for the budget.

The edge here is a scripted stand-in for Image Builder's two list operations,
answering the shapes of botocore's model (WorkflowExecutionMetadata,
WorkflowStepMetadata) as `watcher.aws` parses them; the end-to-end behaviour over
HTTP is in tests/engine/test_progress.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import anyio
from structlog.testing import capture_logs

from watcher.build_progress import BuildProgress, LookupBudget, ProgressLookups, progress_text
from watcher.clock import Clock
from watcher.diagnostics import StepExecution, WorkflowExecution
from watcher.errors import ApiError, Throttled
from watcher.model import ImageStatus
from watcher.ratelimit import CubicLimiter
from watcher.testing import FakeClock, VirtualClock

BUILD = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0/7"
TEST_WORKFLOW = "arn:aws:imagebuilder:us-east-1:aws:workflow/test/test-image/1.0.2/1"


def step(name: str, status: str, action: str = "ExecuteComponents") -> StepExecution:
    return StepExecution(step_execution_id=f"step-{name}", name=name, action=action, status=status)


def execution(execution_id: str, status: str = "RUNNING", total: int = 3) -> WorkflowExecution:
    return WorkflowExecution(
        execution_id=execution_id,
        type="TEST",
        status=status,
        workflow_arn=TEST_WORKFLOW,
        total_step_count=total,
    )


@dataclass
class ScriptedWorkflows:
    """Answers from what the test set; counts the calls; raises `error` if set."""

    executions: list[WorkflowExecution] = field(default_factory=list)
    steps: dict[str, list[StepExecution]] = field(default_factory=dict)
    error: ApiError | None = None
    clock: Clock | None = None
    delay: float = 0.0
    calls: list[str] = field(default_factory=list)

    async def _answer(self, operation: str) -> None:
        self.calls.append(operation)
        if self.delay and self.clock is not None:
            await self.clock.sleep(self.delay)
        if self.error is not None:
            raise self.error

    async def list_workflow_executions(
        self, build_arn: str, *, next_token: str | None = None
    ) -> tuple[list[WorkflowExecution], str | None]:
        await self._answer("ListWorkflowExecutions")
        return list(self.executions), None

    async def list_workflow_step_executions(
        self, build_arn: str, workflow_execution_id: str, *, next_token: str | None = None
    ) -> tuple[list[StepExecution], str | None]:
        await self._answer("ListWorkflowStepExecutions")
        return list(self.steps.get(workflow_execution_id, [])), None

    async def get_workflow_step_execution(
        self, build_arn: str, step_execution_id: str
    ) -> StepExecution:
        raise AssertionError("progress never asks for one step")


def lookups(edge: ScriptedWorkflows, clock: Clock, **options: object) -> ProgressLookups:
    limiter = CubicLimiter(100.0, clock)
    return ProgressLookups(
        edge,
        limiter=limiter,
        clock=clock,
        share=0.2,
        head_start=options.pop("head_start", 8),  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )


async def test_the_step_number_counts_finished_steps_whatever_the_list_order() -> None:
    """Listed newest first: the running step is first in the list, yet step 3/3."""
    edge = ScriptedWorkflows(
        executions=[execution("wf-1")],
        steps={
            "wf-1": [
                step("TerminateTestInstance", "RUNNING", "TerminateInstance"),
                step("ApplyTestComponents", "COMPLETED"),
                step("LaunchTestInstance", "COMPLETED", "LaunchInstance"),
            ]
        },
    )
    found = await lookups(edge, FakeClock()).refresh(BUILD, ImageStatus.TESTING, None)
    assert found is not None
    assert (
        progress_text(found) == "test workflow, step 3/3 TerminateTestInstance (TerminateInstance)"
    )
    assert found.workflow_name == "test-image"


async def test_a_known_execution_costs_one_call_and_a_gap_between_steps_keeps_the_last() -> None:
    edge = ScriptedWorkflows(
        executions=[execution("wf-1")],
        steps={"wf-1": [step("LaunchTestInstance", "RUNNING", "LaunchInstance")]},
    )
    clock = FakeClock()
    progress = lookups(edge, clock)
    first = await progress.refresh(BUILD, ImageStatus.TESTING, None)
    assert first is not None
    assert edge.calls == ["ListWorkflowExecutions", "ListWorkflowStepExecutions"]
    # The first step finished; the second has not started yet.
    edge.steps["wf-1"] = [step("LaunchTestInstance", "COMPLETED", "LaunchInstance")]
    edge.calls.clear()
    clock.advance(30)
    between = await progress.refresh(BUILD, ImageStatus.TESTING, first)
    assert edge.calls == ["ListWorkflowStepExecutions"]
    assert between == first


async def test_a_workflow_over_while_its_status_is_not_shows_no_step_then_lists_again() -> None:
    """A parallel test group: the first TEST workflow ended, another runs."""
    edge = ScriptedWorkflows(
        executions=[execution("wf-1")],
        steps={"wf-1": [step("RunTests", "RUNNING")]},
    )
    clock = FakeClock()
    progress = lookups(edge, clock)
    first = await progress.refresh(BUILD, ImageStatus.TESTING, None)
    assert first is not None
    edge.steps["wf-1"] = [step("A", "COMPLETED"), step("B", "COMPLETED"), step("C", "COMPLETED")]
    edge.executions = [execution("wf-1", "COMPLETED"), execution("wf-2"), execution("wf-3")]
    edge.steps["wf-2"] = [step("Other", "RUNNING")]
    edge.steps["wf-3"] = [step("Smoke", "COMPLETED"), step("Load", "RUNNING")]
    clock.advance(30)
    over = await progress.refresh(BUILD, ImageStatus.TESTING, first)
    assert over is not None
    assert (over.workflow_execution_id, over.step) == ("wf-1", None)
    assert progress_text(over) == "test workflow"
    clock.advance(30)
    edge.calls.clear()
    again = await progress.refresh(BUILD, ImageStatus.TESTING, over)
    assert edge.calls == ["ListWorkflowExecutions", "ListWorkflowStepExecutions"]
    assert again is not None
    # Of two running, the last listed.
    assert (again.workflow_execution_id, again.step, again.step_name) == ("wf-3", 2, "Load")


async def test_a_status_that_runs_no_workflow_costs_nothing() -> None:
    edge = ScriptedWorkflows(executions=[execution("wf-1")])
    progress = lookups(edge, FakeClock())
    shown = await progress.refresh(BUILD, ImageStatus.TESTING, None)
    for status in (ImageStatus.PENDING, ImageStatus.AVAILABLE, ImageStatus.FAILED):
        assert await progress.refresh(BUILD, status, shown) is None
    assert len(edge.calls) == 2


async def test_a_throttled_look_up_pauses_the_look_ups_and_leaves_the_limiter_alone() -> None:
    edge = ScriptedWorkflows(error=Throttled("Rate exceeded", code="ThrottlingException"))
    clock = FakeClock()
    limiter = CubicLimiter(5.0, clock)
    progress = ProgressLookups(edge, limiter=limiter, clock=clock, share=0.2, head_start=8)
    with capture_logs() as logs:
        for _ in range(3):
            assert await progress.refresh(BUILD, ImageStatus.TESTING, None) is None
            clock.advance(10)
        assert edge.calls == ["ListWorkflowExecutions"], "paused after the throttle"
        assert limiter.rate == 5.0, "a status poll's rate is not halved by a look-up"
        clock.advance(60)
        edge.error = None
        edge.executions = [execution("wf-1")]
        edge.steps = {"wf-1": [step("RunTests", "RUNNING")]}
        assert await progress.refresh(BUILD, ImageStatus.TESTING, None) is not None
    events = [line["event"] for line in logs]
    assert events == ["image.progress_unavailable", "image.progress_available"]


async def test_a_look_up_an_event_waits_for_is_given_up_at_its_deadline() -> None:
    clock = VirtualClock()
    edge = ScriptedWorkflows(executions=[execution("wf-1")], clock=clock, delay=60.0)
    shown = BuildProgress(
        workflow="TEST",
        workflow_name="test-image",
        workflow_execution_id="wf-1",
        step=1,
        steps=3,
        step_name="LaunchTestInstance",
        action="LaunchInstance",
        step_started_at=None,
        observed_at=clock.now(),
    )
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        started = clock.monotonic()
        found = await lookups(edge, clock).refresh(BUILD, ImageStatus.TESTING, shown, deadline=5.0)
        waited = clock.monotonic() - started
        group.cancel_scope.cancel()
    assert found == shown, "given up: what was shown stays"
    assert math.isclose(waited, 5.0)


async def test_concurrent_look_ups_cannot_spend_the_same_budget() -> None:
    """Room for four look-ups (the budget's burst): of five polls at the same moment,
    four look up, each reserving its two calls before its first one is sent."""
    clock = VirtualClock()
    edge = ScriptedWorkflows(
        executions=[execution("wf-1")],
        steps={"wf-1": [step("RunTests", "RUNNING")]},
        clock=clock,
        delay=1.0,
    )
    progress = lookups(edge, clock, head_start=1)
    results: list[BuildProgress | None] = []

    async def poll() -> None:
        results.append(await progress.refresh(BUILD, ImageStatus.TESTING, None))

    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        async with anyio.create_task_group() as polls:
            for _ in range(5):
                polls.start_soon(poll)
        group.cancel_scope.cancel()
    assert len(edge.calls) == 8, edge.calls
    assert sorted(r is not None for r in results) == [False, True, True, True, True]


def test_an_empty_budget_earns_its_share_of_the_limiter_rate() -> None:
    clock = FakeClock()
    budget = LookupBudget(0.2, CubicLimiter(5.0, clock), clock, capacity=8)
    assert not budget.reserve(2)
    clock.advance(1.9)  # 0.2 x 5 calls/s: 1.9 calls' worth
    assert not budget.reserve(2)
    clock.advance(0.1)
    assert budget.reserve(2)
    budget.settle(2, 1)  # one call made: one goes back
    assert budget.reserve(1)
    assert not budget.reserve(1)
    clock.advance(100)
    assert budget.reserve(8)
    assert not budget.reserve(1), "never more than its capacity"
