"""Scenario keys that describe the workflows a build runs: which statuses run a
workflow, its steps (names, actions, durations, messages), and the defaults.

Validation and defaults only; placing steps in time is `workflows.py`'s job.

The model's `WorkflowType` enum is BUILD, TEST, DISTRIBUTION; that BUILDING runs the
BUILD workflow, TESTING the TEST one and DISTRIBUTING the DISTRIBUTION one is our
reading of the image statuses (ImageStatus has no other status a workflow fits).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from watcher.durations import Duration
from watcher.simulator import model

WORKFLOW_TYPES: dict[str, str] = {
    "BUILDING": "BUILD",
    "TESTING": "TEST",
    "DISTRIBUTING": "DISTRIBUTION",
}
assert set(WORKFLOW_TYPES.values()) == set(model.shape("WorkflowType").enum)

# The model's WorkflowStepName / WorkflowStepAction patterns, and WorkflowStepMessage's
# length (max 500).
STEP_NAME = model.shape("WorkflowStepName").metadata["pattern"]
STEP_ACTION = model.shape("WorkflowStepAction").metadata["pattern"]
MESSAGE_MAX = int(model.shape("WorkflowStepMessage").metadata["max"])


class WorkflowStep(BaseModel):
    """One step of a workflow, as a workflow document names it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=STEP_NAME)
    action: str = Field(pattern=STEP_ACTION)
    duration: Duration | None = None
    """How long it runs; steps without one share the time their status has left."""
    message: str | None = Field(default=None, min_length=1, max_length=MESSAGE_MAX)
    """Served as the step's `message` once it has started."""


def _steps(*pairs: tuple[str, str]) -> tuple[WorkflowStep, ...]:
    return tuple(WorkflowStep(name=name, action=action) for name, action in pairs)


# Defaults: the step names and actions of Image Builder's managed workflows as the
# user guide shows them ("build-image": LaunchBuildInstance/LaunchInstance,
# ApplyBuildComponents/ExecuteComponents, CreateOutputAMI/CreateImage,
# TerminateBuildInstance/TerminateInstance; "test-image": LaunchTestInstance,
# ApplyTestComponents, TerminateTestInstance). The actions are from the guide's
# "Supported step actions" list; the container build and the distribution steps are
# our reading (their managed documents are not reproduced there).
_DEFAULTS: dict[tuple[str, str], tuple[WorkflowStep, ...]] = {
    ("BUILD", "AMI"): _steps(
        ("LaunchBuildInstance", "LaunchInstance"),
        ("ApplyBuildComponents", "ExecuteComponents"),
        ("CreateOutputAMI", "CreateImage"),
        ("TerminateBuildInstance", "TerminateInstance"),
    ),
    ("BUILD", "DOCKER"): _steps(
        ("LaunchBuildInstance", "LaunchInstance"),
        ("BootstrapBuildInstanceForContainer", "BootstrapInstanceForContainer"),
        ("ApplyBuildComponents", "ExecuteComponents"),
        ("TerminateBuildInstance", "TerminateInstance"),
    ),
    ("TEST", "AMI"): _steps(
        ("LaunchTestInstance", "LaunchInstance"),
        ("ApplyTestComponents", "ExecuteComponents"),
        ("TerminateTestInstance", "TerminateInstance"),
    ),
    ("DISTRIBUTION", "AMI"): _steps(
        ("DistributeImage", "DistributeImage"),
        ("ApplyImageConfigurations", "ApplyImageConfigurations"),
    ),
}
_DEFAULTS["TEST", "DOCKER"] = _DEFAULTS["TEST", "AMI"]
_DEFAULTS["DISTRIBUTION", "DOCKER"] = _DEFAULTS["DISTRIBUTION", "AMI"][:1]

# Where a workflow fails when the scenario does not say: the step that runs the
# user's components or copies the image (our reading: where builds usually fail).
_LIKELY_TO_FAIL = ("ExecuteComponents", "DistributeImage")


def workflow_steps(
    status: str, given: list[WorkflowStep] | None, image_type: Literal["AMI", "DOCKER"]
) -> tuple[WorkflowStep, ...]:
    """The steps a timeline step of `status` runs; () if that status runs no workflow."""
    kind = WORKFLOW_TYPES.get(status)
    if kind is None:
        return ()
    return tuple(given) if given else _DEFAULTS[kind, image_type]


def failing_step(
    steps: tuple[WorkflowStep, ...], named: str | None, context_name: object = None
) -> int:
    """Which of `steps` fails: the one `named` (the scenario's `failed_step`), else the
    one the scenario's failure_context.failedStep names if it is one of them, else
    the first that runs components or distributes, else the last."""
    names = [s.name for s in steps]
    for wanted in (named, context_name):
        if isinstance(wanted, str) and wanted in names:
            return names.index(wanted)
    for index, step in enumerate(steps):
        if step.action in _LIKELY_TO_FAIL:
            return index
    return len(steps) - 1
