"""Handlers of the operations on a build's workflows: ListWorkflowExecutions,
ListWorkflowStepExecutions, GetWorkflowExecution and GetWorkflowStepExecution.

Like `handlers_images`: validated input in, the world at the current scenario
time, a document of the model's output shape out, ApiError for an error answer.

None of the four lists ResourceNotFoundException among its errors in the model; an
unknown build or id is answered with it all the same (our reading, as for GetImage:
it is an error shape of the service, botocore raises its class, and it fits). A
workflow or step that has not started yet is unknown: its id is assigned at runtime.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from watcher.simulator.account import NOT_FOUND
from watcher.simulator.faults import Decision
from watcher.simulator.inputs import read_input
from watcher.simulator.wire import ApiError, json_response
from watcher.simulator.workflows import WorkflowRun
from watcher.simulator.world import Handler, World


def _run(world: World, execution: str, t: float) -> WorkflowRun:
    """The workflow execution `execution` names, begun by scenario time t."""
    run = world.renderer.workflows.find_run(world.account.catalog, execution, t)
    if run is None:
        raise ApiError(NOT_FOUND, f"The workflow execution {execution} cannot be found.")
    return run


async def _list_workflow_executions(
    request: web.Request, world: World, decision: Decision
) -> web.Response:
    operation = "ListWorkflowExecutions"
    params = await read_input(request, operation)
    t = world.now()
    arn: str = params["imageBuildVersionArn"]
    build = world.account.build(arn, t)
    runs = world.renderer.workflows.runs(build, t)
    # Served in the order they ran (our reading: the model gives no order), which
    # the pager's highest-key-first order gives with the phase index negated.
    page, token = world.pager.page(operation, params, [((-r.phase.index,), r) for r in runs])
    document: dict[str, Any] = {
        "requestId": decision.request_id,
        "workflowExecutions": [world.renderer.workflow_execution(r, t) for r in page],
        "imageBuildVersionArn": arn,
    }
    phase = build.phase_at(t)
    # message: "The failure reason for the image build version, if it's in a failed
    # state. This comes from the image itself, not from an individual workflow."
    if phase is not None and phase.status == "FAILED" and phase.step.reason:
        document["message"] = phase.step.reason
    if token is not None:
        document["nextToken"] = token
    return json_response(document, decision.request_id)


async def _list_workflow_step_executions(
    request: web.Request, world: World, decision: Decision
) -> web.Response:
    operation = "ListWorkflowStepExecutions"
    params = await read_input(request, operation)
    t = world.now()
    execution: str = params["workflowExecutionId"]
    run = _run(world, execution, t)
    page, token = world.pager.page(
        operation, params, [((-s.index,), s) for s in run.started_steps(t)]
    )
    document: dict[str, Any] = {
        "requestId": decision.request_id,
        "steps": [world.renderer.step_execution(run, s, t) for s in page],
        "workflowBuildVersionArn": run.workflow_arn,
        "workflowExecutionId": run.execution_id,
        "imageBuildVersionArn": run.build.arn,
    }
    if token is not None:
        document["nextToken"] = token
    return json_response(document, decision.request_id)


async def _get_workflow_execution(
    request: web.Request, world: World, decision: Decision
) -> web.Response:
    params = await read_input(request, "GetWorkflowExecution")
    t = world.now()
    execution: str = params["workflowExecutionId"]
    run = _run(world, execution, t)
    return json_response(
        {
            "requestId": decision.request_id,
            "imageBuildVersionArn": run.build.arn,
            **world.renderer.workflow_execution(run, t),
        },
        decision.request_id,
    )


async def _get_workflow_step_execution(
    request: web.Request, world: World, decision: Decision
) -> web.Response:
    params = await read_input(request, "GetWorkflowStepExecution")
    t = world.now()
    step_execution: str = params["stepExecutionId"]
    found = world.renderer.workflows.find_step(world.account.catalog, step_execution, t)
    if found is None:
        raise ApiError(NOT_FOUND, f"The workflow step execution {step_execution} cannot be found.")
    run, step = found
    return json_response(
        {
            "requestId": decision.request_id,
            "workflowBuildVersionArn": run.workflow_arn,
            "workflowExecutionId": run.execution_id,
            "imageBuildVersionArn": run.build.arn,
            **world.renderer.step_execution(run, step, t),
            # onFailure: "If the step doesn't set a value, it defaults to Abort."
            "onFailure": "Abort",
        },
        decision.request_id,
    )


HANDLERS: dict[str, Handler] = {
    "ListWorkflowExecutions": _list_workflow_executions,
    "ListWorkflowStepExecutions": _list_workflow_step_executions,
    "GetWorkflowExecution": _get_workflow_execution,
    "GetWorkflowStepExecution": _get_workflow_step_execution,
}
