"""The log a simulated build writes to CloudWatch Logs, placed in scenario time.

DESIGN.md ("Facts", Steps): a build's log is in the group
`loggingConfiguration.logGroupName` (default `/aws/imagebuilder/<image name>`, which
`documents.log_group` serves in GetImage) and the stream `<version>/<build>`. The
lines are derived from the timeline, never stored, like `workflows.py`: a line per
status the build enters, a line as each workflow step starts and one as it ends
(the failing step's with its own message), and the scenario's own `log` lines of
each timeline step. Pure over scenario time: no clock, no I/O, no wire format.

Our reading where AWS documents nothing: the wording of every derived line (a real
build's log holds what its components print, in AWSTOE's format); that the
lifecycle statuses (DEPRECATED, DISABLED, DELETED), which come after creation, add
no line; and where a timeline step's `log` lines fall: they are the output of the
step that fails, else of the first step that runs components (ExecuteComponents),
and are spread evenly over that step's time, so they come before its failure; in
a status without such a step, over the status's planned time; in the status that
lasts forever, all at its start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from watcher.simulator.catalog import Build, Phase
from watcher.simulator.documents import Renderer, log_group
from watcher.simulator.workflows import StepRun, WorkflowRun

_LIFECYCLE = frozenset({"DEPRECATED", "DISABLED", "DELETED"})
_ENDED = {"COMPLETED": "completed", "FAILED": "failed", "CANCELLED": "cancelled"}


@dataclass(frozen=True)
class LogLine:
    """One line of a build's log, written at scenario time `at`."""

    at: float
    message: str


def group_name(build: Build) -> str:
    return log_group(build.name)


def stream_name(build: Build) -> str:
    """`<version>/<build>`, e.g. `1.4.0/7`."""
    return f"{build.version}/{build.number}"


def lines(build: Build, renderer: Renderer) -> list[LogLine]:
    """Every line the build writes over its whole timeline as known now, in the order
    written; lines at the same moment keep the order they are written in. A caller
    shows those with `at` up to the current scenario time: a later line is not
    written yet, and a cancellation removes only lines still to come."""
    written: list[LogLine] = []
    for phase in build.phases:
        if phase.ends == phase.begins:
            continue  # a zero-length status is passed over, as Build.phase_at does
        written += _phase_lines(build, phase, renderer)
    # Stable: equal moments keep the order written (a step's end, then the next status).
    return sorted(written, key=lambda line: line.at)


def _phase_lines(build: Build, phase: Phase, renderer: Renderer) -> list[LogLine]:
    step = phase.step
    out: list[LogLine] = []
    if step.status not in _LIFECYCLE:
        text = f"Image status: {step.status}"
        out.append(LogLine(phase.begins, f"{text}: {step.reason}" if step.reason else text))
    run = renderer.workflows.run(build, phase)
    if run is not None:
        out += _workflow_lines(run, renderer)
    if step.log:
        out += _scenario_lines(phase, run, step.log)
    return out


def _workflow_lines(run: WorkflowRun, renderer: Renderer) -> list[LogLine]:
    total = len(run.defined)
    out = [
        LogLine(
            run.phase.begins,
            f"{run.type} workflow {run.execution_id} started: {total} steps",
        )
    ]
    for step in run.steps:
        if run.ends is not None and step.begins >= run.ends:
            break  # a cancellation ended the workflow before this step began
        where = f"Step {step.index + 1}/{total} {step.spec.name} ({step.spec.action})"
        out.append(LogLine(step.begins, f"{where} started"))
        ended = step.ended_at(math.inf, run.ends)
        if ended is None:
            continue  # it runs for as long as the build does
        status = step.status_at(math.inf, run.ends, run.outcome)
        text = f"{where} {_ENDED.get(status, status.lower())}"
        message = renderer.step_message(run, step) if status == "FAILED" else step.spec.message
        out.append(LogLine(ended, f"{text}: {message}" if message else text))
    return out


def _writing_step(run: WorkflowRun | None) -> StepRun | None:
    """The step whose output a status's `log` lines are: the failing step, else the
    first that runs components; None: the status as a whole."""
    if run is None:
        return None
    failing = run.failed_step()
    if failing is not None:
        return failing
    return next((s for s in run.steps if s.spec.action == "ExecuteComponents"), None)


def _scenario_lines(phase: Phase, run: WorkflowRun | None, given: list[str]) -> list[LogLine]:
    writer = _writing_step(run)
    if writer is not None and writer.ends is not None:
        begins, ends = writer.begins, writer.ends
    elif phase.step.duration is not None:
        # The status's planned time: a cancellation cuts `phase.ends`, and the lines
        # already shown must keep their times.
        begins, ends = phase.begins, phase.begins + phase.step.duration
    else:
        return [LogLine(phase.begins, text) for text in given]
    gap = (ends - begins) / (len(given) + 1)
    placed = [LogLine(begins + gap * (i + 1), text) for i, text in enumerate(given)]
    # Lines the build would have written after a cancellation are never written.
    return [line for line in placed if phase.ends is None or line.at < phase.ends]
