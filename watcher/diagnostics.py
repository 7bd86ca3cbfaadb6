"""Why a build failed: its failing workflow step, component and region failures, its
build log (and, when asked, its last lines) and its console page, gathered once when
a poll first sees it FAILED.

Best effort by design: a look-up that fails (throttled past its retries, a policy
without imagebuilder:ListWorkflowExecutions or logs:GetLogEvents, an id or a log
stream AWS does not know) leaves its part out and logs one warning. It must never
fail a watch nor raise into the engine, and never let a log line out unredacted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from typing import Any, Protocol, TypeVar, runtime_checkable
from urllib.parse import quote

import structlog

from watcher.model import Arn, ImageSnapshot, _AwsShaped, _camel, _Value
from watcher.redaction import redact
from watcher.urls import CONSOLE_HOSTS

log = structlog.get_logger("ibwatch")

T = TypeVar("T")

_MAX_PAGES = 20
"""Pages read of one list before giving up: a build runs a handful of workflows of
a handful of steps each (at most 25 a page), so this is never reached honestly."""

MAX_LINE = 2000
"""Characters of one log line kept (our choice): a CloudWatch Logs event can hold
256 KB, and an event or a result carries up to 1000 lines (`[diagnostics]
log_lines`). The rest of a longer line is cut, after it was redacted."""


class WorkflowExecution(_Value):
    """One WorkflowExecutionMetadata of ListWorkflowExecutions."""

    execution_id: str
    type: str | None = None
    """BUILD, TEST or DISTRIBUTION (the model's WorkflowType)."""
    status: str | None = None
    workflow_arn: str | None = None
    message: str | None = None
    total_step_count: int | None = None
    """totalStepCount: "Image Builder sets this count before any steps run"."""


class StepExecution(_Value):
    """One WorkflowStepMetadata of ListWorkflowStepExecutions, or a
    GetWorkflowStepExecution answer."""

    step_execution_id: str
    name: str
    action: str | None = None
    status: str | None = None
    message: str | None = None
    """The model's WorkflowStepMessage: "Detailed output message that the workflow
    step provides at runtime"."""
    execution_id: str | None = None
    """Its workflow execution (GetWorkflowStepExecution says; a list item does not)."""
    workflow_arn: str | None = None
    started_at: datetime | None = None
    """startTime: when the step started."""


@runtime_checkable
class WorkflowEdge(Protocol):
    """The calls `gather` makes: one API call each, so the caller paces every page."""

    async def list_workflow_executions(
        self, build_arn: str, *, next_token: str | None = None
    ) -> tuple[list[WorkflowExecution], str | None]: ...

    async def list_workflow_step_executions(
        self, build_arn: str, workflow_execution_id: str, *, next_token: str | None = None
    ) -> tuple[list[StepExecution], str | None]: ...

    async def get_workflow_step_execution(
        self, build_arn: str, step_execution_id: str
    ) -> StepExecution: ...


@runtime_checkable
class LogEdge(Protocol):
    """The CloudWatch Logs read `gather` makes for a log tail. Unlike `WorkflowEdge`'s
    calls it is paced and retried by the edge itself: CloudWatch Logs has its own
    quota, so its calls must not go through (nor slow down) Image Builder's limiter."""

    async def log_tail(self, build_arn: str, group: str, stream: str, events: int) -> list[str]:
        """The messages of the last `events` events of the stream, oldest first;
        raises a `watcher.errors.ApiError`."""
        ...


class Call(Protocol):
    """The engine's `call`: one API call, paced by the shared limiter and retried."""

    def __call__(self, fn: Callable[[], Awaitable[T]]) -> Awaitable[T]: ...


class FailedStep(_Value):
    """The workflow step a build failed in, as the workflow APIs describe it."""

    workflow: str | None
    """The workflow's type: BUILD, TEST or DISTRIBUTION."""
    workflow_name: str | None
    """The workflow resource's name (`test-image` of `.../workflow/test/test-image/1.0.0/1`)."""
    workflow_arn: str | None
    workflow_execution_id: str | None
    step_execution_id: str
    name: str
    action: str | None
    message: str | None
    """The step's own runtime message: often the one line that says why."""


class ComponentFailure(_AwsShaped):
    """failureContext.componentFailure: the component step that failed."""

    component_arn: str | None = None
    phase_name: str | None = None
    step_name: str | None = None
    action: str | None = None
    error_message: str | None = None


class RegionFailure(_AwsShaped):
    """One of failureContext.distributionFailure.regionFailures."""

    region: str | None = None
    status: str | None = None
    """FAILED, CANCELLED or TIMED_OUT (the model's RegionFailureStatus)."""
    error_message: str | None = None
    image_configuration_step: str | None = None
    target_account_id: str | None = None


class Diagnostics(_Value):
    """What a FAILED event says about why, beyond `reason` and `failureContext`."""

    failed_step: FailedStep | None
    """None when the workflow look-ups failed or found no failed step."""
    component_failure: ComponentFailure | None
    distribution_error: str | None
    """failureContext.distributionFailure.errorMessage."""
    region_failures: tuple[RegionFailure, ...]
    log_group: str
    log_stream: str
    console_url: str | None
    log_tail: tuple[str, ...] | None = None
    """The last lines of the build's log stream, secrets-looking strings redacted;
    None when not asked for (`log_lines` 0) or not readable."""


def log_group(snapshot: ImageSnapshot) -> str:
    """ImageLoggingConfiguration.logGroupName: "If not specified, the log group name
    defaults to /aws/imagebuilder/image-name"."""
    return snapshot.log_group or f"/aws/imagebuilder/{snapshot.name}"


def log_stream(snapshot: ImageSnapshot) -> str:
    """`<version>/<build>`, e.g. `1.4.0/7` (DESIGN.md, Facts: Steps)."""
    return f"{snapshot.version}/{snapshot.build}"


def console_url(build_arn: str) -> str | None:
    """The build's page in the Image Builder console.

    The format is as observed, not documented by AWS: the console is a single-page
    app whose routes are `home?region=R#/images` (the images list), `#/pipelines/<the
    pipeline ARN>` and `#/images/<the image version ARN, URL-encoded>/<build>/details`
    for one build. Links people share in public code use the first two; the third is
    the build page's route as the console shows it. AWS may change these at any time.
    """
    arn = Arn.parse(build_arn)
    host = CONSOLE_HOSTS.get(arn.partition)
    if host is None or arn.build is None:
        return None
    version = quote(arn.version_arn, safe="")
    return (
        f"https://{arn.region}.{host}/imagebuilder/home?region={arn.region}"
        f"#/images/{version}/{arn.build}/details"
    )


async def gather(
    edge: WorkflowEdge, call: Call, snapshot: ImageSnapshot, *, log_lines: int = 0
) -> Diagnostics:
    """The diagnostics of FAILED `snapshot`, with the last `log_lines` lines of its
    build log when more than 0; never raises (bar cancellation)."""
    context = snapshot.failure_context or {}
    try:
        step = await _failed_step(edge, call, snapshot.arn, context)
    except Exception as exc:  # best effort: any failure only leaves the step out
        step = None
        log.warning(
            "image.diagnostics_incomplete",
            arn=snapshot.arn,
            error=type(exc).__name__,
            code=str(getattr(exc, "code", "")),
            message=str(exc),
            note=(
                "the failed step is left out; the workflow look-ups need "
                "imagebuilder:ListWorkflowExecutions, ListWorkflowStepExecutions and "
                "GetWorkflowStepExecution"
            ),
        )
    group, stream = log_group(snapshot), log_stream(snapshot)
    tail = None
    if log_lines > 0 and isinstance(edge, LogEdge):
        tail = await _log_tail(edge, snapshot.arn, group, stream, log_lines)
    distribution = _dict(context.get("distributionFailure"))
    component = _dict(context.get("componentFailure"))
    return Diagnostics(
        failed_step=step,
        component_failure=ComponentFailure(**_fields(component, ComponentFailure))
        if component
        else None,
        distribution_error=_str(distribution.get("errorMessage")),
        region_failures=tuple(
            RegionFailure(**_fields(item, RegionFailure))
            for item in distribution.get("regionFailures") or []
            if isinstance(item, dict)
        ),
        log_group=group,
        log_stream=stream,
        console_url=console_url(snapshot.arn),
        log_tail=tail,
    )


async def _log_tail(
    edge: LogEdge, build_arn: str, group: str, stream: str, lines: int
) -> tuple[str, ...] | None:
    """The last `lines` lines of the build's log, redacted; None (and one warning)
    when they cannot be read."""
    try:
        messages = await edge.log_tail(build_arn, group, stream, lines)
    except Exception as exc:  # best effort: any failure only leaves the tail out
        arn = Arn.parse(build_arn)
        log.warning(
            "image.log_tail_unavailable",
            arn=build_arn,
            error=type(exc).__name__,
            code=str(getattr(exc, "code", "")),
            message=str(exc),
            note=(
                "the build log's last lines are left out; reading them needs "
                f"logs:GetLogEvents on arn:{arn.partition}:logs:{arn.region}:{arn.account}"
                f":log-group:{group}:*"
            ),
        )
        return None
    return tail_lines(messages, lines)


def tail_lines(messages: list[str], lines: int) -> tuple[str, ...]:
    """The last `lines` lines of log events `messages` (oldest first), redacted.

    An event's message can hold several lines (a multi-line output logged as one
    event): each is a line of its own here, and `lines` counts these, so the tail
    is never more than `lines` lines long. Each message's line break at the end is
    not a line. The lines are redacted joined, so that a private key spread over
    several of them is recognised; then each is cut to `MAX_LINE` characters, and a
    lone surrogate (which JSON can escape but UTF-8 cannot carry) becomes `?`."""
    split = [line for message in messages for line in message.splitlines() or [""]]
    kept = split[-lines:] if lines > 0 else []
    redacted = redact("\n".join(kept)).split("\n") if kept else []
    return tuple(_cut(line).encode("utf-8", "replace").decode("utf-8") for line in redacted)


def _cut(line: str) -> str:
    if len(line) <= MAX_LINE:
        return line
    return f"{line[:MAX_LINE]}… ({len(line) - MAX_LINE} more characters)"


async def _failed_step(
    edge: WorkflowEdge, call: Call, build_arn: str, context: dict[str, Any]
) -> FailedStep | None:
    """From failureContext's ids where it has them (one GetWorkflowStepExecution, or
    the steps of its workflow), else from the workflow lists."""
    step_id = _str(context.get("stepExecutionId"))
    execution_id = _str(context.get("workflowExecutionId"))
    workflow_arn = _str(context.get("workflowArn"))
    if step_id is not None:
        step = await call(lambda: edge.get_workflow_step_execution(build_arn, step_id))
        return _described(
            step,
            execution_id=step.execution_id or execution_id,
            workflow_arn=step.workflow_arn or workflow_arn,
        )
    workflow_type: str | None = None
    if execution_id is None:
        workflow = await _failed_workflow(edge, call, build_arn)
        if workflow is None:
            return None
        execution_id, workflow_type = workflow.execution_id, workflow.type
        workflow_arn = workflow.workflow_arn or workflow_arn
    failed = await _find_failed_step(edge, call, build_arn, execution_id)
    if failed is None:
        return None
    return _described(
        failed, execution_id=execution_id, workflow_arn=workflow_arn, workflow_type=workflow_type
    )


async def _failed_workflow(
    edge: WorkflowEdge, call: Call, build_arn: str
) -> WorkflowExecution | None:
    """The last FAILED workflow execution of the build (the one a retry did not
    supersede is listed after those it did: our reading, as the model gives no order)."""
    found: WorkflowExecution | None = None
    token: str | None = None
    for _ in range(_MAX_PAGES):
        items, token = await call(
            partial(edge.list_workflow_executions, build_arn, next_token=token)
        )
        found = next((w for w in reversed(items) if w.status == "FAILED"), found)
        if not token:
            break
    return found


async def _find_failed_step(
    edge: WorkflowEdge, call: Call, build_arn: str, execution_id: str
) -> StepExecution | None:
    found: StepExecution | None = None
    token: str | None = None
    for _ in range(_MAX_PAGES):
        items, token = await call(
            partial(edge.list_workflow_step_executions, build_arn, execution_id, next_token=token)
        )
        found = next((s for s in reversed(items) if s.status == "FAILED"), found)
        if not token:
            break
    return found


def _described(
    step: StepExecution,
    *,
    execution_id: str | None,
    workflow_arn: str | None,
    workflow_type: str | None = None,
) -> FailedStep:
    kind, name = _workflow_kind_and_name(workflow_arn)
    return FailedStep(
        workflow=workflow_type or kind,
        workflow_name=name,
        workflow_arn=workflow_arn,
        workflow_execution_id=execution_id,
        step_execution_id=step.step_execution_id,
        name=step.name,
        action=step.action,
        message=step.message,
    )


def _workflow_kind_and_name(workflow_arn: str | None) -> tuple[str | None, str | None]:
    """The model's WorkflowBuildVersionArn pattern spells the type in the ARN:
    `...:workflow/(build|test|distribution)/NAME/X.Y.Z/N`."""
    if workflow_arn is None:
        return None, None
    _, _, resource = workflow_arn.partition(":workflow/")
    parts = resource.split("/")
    if len(parts) < 2 or not parts[0]:
        return None, None
    return parts[0].upper(), parts[1] or None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _fields(document: dict[str, Any], kind: type[_Value]) -> dict[str, str]:
    """The string members of AWS document `document` that `kind` has, by our names."""
    wanted = {_camel(f.name): f.name for f in dataclasses.fields(kind)}  # type: ignore[arg-type]
    return {wanted[k]: v for k, v in document.items() if k in wanted and isinstance(v, str)}
