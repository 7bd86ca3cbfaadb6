"""Scenario keys that describe builds: timeline steps, outputs, and `[[images]]`.

A `BuildTemplate` is what every build carries (type, platform, timeline, outputs,
tags); an `Image` is one build with its ARN and start time, and a pipeline uses
the same template for each run. Validation only: never serves or schedules.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from watcher.durations import Duration
from watcher.simulator import model
from watcher.simulator.scenario_workflows import (
    MESSAGE_MAX,
    STEP_NAME,
    WORKFLOW_TYPES,
    WorkflowStep,
    workflow_steps,
)

STATUSES: tuple[str, ...] = tuple(model.shape("ImageStatus").enum)

# A build-version ARN: the model's pattern for GetImage, restricted to the branch
# with a build number, with the pieces named.
BUILD_ARN = re.compile(
    r"^arn:(?P<partition>aws[^:]*):imagebuilder:(?P<region>[^:]+):"
    r"(?P<account>[0-9]{12}|aws(?:-[a-z-]+)?):image/(?P<name>[a-z0-9-_]+)/"
    r"(?P<version>[0-9]+\.[0-9]+\.[0-9]+)/(?P<build>[0-9]+)$"
)
# The model's ImageVersionArn (exact version, no build number), pieces named.
VERSION_ARN = re.compile(
    r"^arn:(?P<partition>aws[^:]*):imagebuilder:(?P<region>[^:]+):"
    r"(?P<account>[0-9]{12}|aws(?:-[a-z-]+)?):image/(?P<name>[a-z0-9-_]+)/"
    r"(?P<version>[0-9]+\.[0-9]+\.[0-9]+)$"
)
# The model's ResourceName, which image and pipeline names obey.
RESOURCE_NAME = model.shape("ResourceName").metadata["pattern"]
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-[0-9]+$")
_AMI_ID = re.compile(r"^ami-[0-9a-f]{8,17}$")


# A CloudWatch Logs event's message: the model's EventMessage has min 1; one line
# each (our choice: GetLogEvents returns events, and a build log's are lines).
LogLine = Annotated[str, Field(min_length=1, pattern=r"^[^\r\n]+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(Strict):
    """One status of a build's timeline and how long the build stays in it."""

    allow_unknown_status: bool = False
    """Serve a status the model does not list (AWS adds values over time)."""
    status: str
    duration: Duration | None = None
    reason: str | None = Field(default=None, min_length=1)
    failure_context: dict[str, Any] | None = None
    workflow_steps: list[WorkflowStep] | None = Field(default=None, min_length=1)
    """BUILDING, TESTING, DISTRIBUTING: the steps of the workflow it runs (else defaults)."""
    failed_step: str | None = Field(default=None, pattern=STEP_NAME)
    """FAILED: the name of the step of the workflow before that failed."""
    failed_step_message: str | None = Field(default=None, min_length=1, max_length=MESSAGE_MAX)
    """FAILED: the failing step's own `message`."""
    log: list[LogLine] | None = Field(default=None, min_length=1)
    """Lines written to the build's log stream during this status (see `build_logs`)."""

    @field_validator("status")
    @classmethod
    def _known_status(cls, value: str, info: ValidationInfo) -> str:
        if value in STATUSES:
            return value
        if not info.data.get("allow_unknown_status"):
            hint = difflib.get_close_matches(value.upper(), STATUSES, n=1)
            guess = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ValueError(
                f"{value!r} is not an Image Builder status{guess}; expected one of "
                f"{', '.join(STATUSES)}, or set allow_unknown_status = true to serve a new one"
            )
        if not re.fullmatch(r"[A-Z][A-Z_]*", value):
            raise ValueError(f"{value!r} must be UPPER_CASE like the API's statuses")
        return value

    @model_validator(mode="after")
    def _workflow_keys_fit(self) -> Step:
        if self.workflow_steps is not None:
            if self.status not in WORKFLOW_TYPES:
                raise ValueError(
                    f"workflow_steps is only for {', '.join(WORKFLOW_TYPES)} (the statuses that "
                    f"run a {'/'.join(WORKFLOW_TYPES.values())} workflow), not {self.status}"
                )
            names = [s.name for s in self.workflow_steps]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"workflow step names must be unique; twice: {', '.join(twice)}")
            given = sum(s.duration or 0.0 for s in self.workflow_steps)
            if self.duration is not None and given > self.duration:
                raise ValueError(
                    f"the workflow steps' durations add up to {given:g}s, more than the "
                    f"{self.duration:g}s {self.status} lasts"
                )
        for key in ("failed_step", "failed_step_message"):
            if getattr(self, key) is not None and self.status != "FAILED":
                raise ValueError(f"{key} is only for a FAILED step, not {self.status}")
        return self

    @model_validator(mode="after")
    def _failure_context_shape(self) -> Step:
        if self.failure_context is None:
            return self
        # The model, ImageState.failureContext: "Image Builder only sets this
        # property when the image status is FAILED"; ImageFailureContext: "details
        # about the failure when the image creation process fails".
        if self.status != "FAILED":
            raise ValueError(
                f"failure_context is only served with FAILED, not {self.status}: the model "
                "says of ImageState.failureContext 'Image Builder only sets this property "
                "when the image status is FAILED'; give a cancelled build a reason instead"
            )
        shape = model.shape("ImageFailureContext")
        problems = model.violations(self.failure_context, shape, "failure_context")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class Ami(Strict):
    region: str
    image: str
    name: str | None = None
    description: str | None = None
    account_id: str | None = Field(default=None, pattern=r"^[0-9]{12}$")

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        return _check_region(value)

    @field_validator("image")
    @classmethod
    def _ami_id(cls, value: str) -> str:
        if not _AMI_ID.match(value):
            raise ValueError(f"expected an AMI id like 'ami-0abc12345def67890', got {value!r}")
        return value


class Container(Strict):
    region: str
    image_uris: list[str] = Field(min_length=1)

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        return _check_region(value)


def _check_region(value: str) -> str:
    if not _REGION.match(value):
        raise ValueError(f"expected an AWS region like 'us-east-1', got {value!r}")
    return value


class BuildTemplate(Strict):
    """What every build carries: its kind, its timeline and its outputs."""

    type: Literal["AMI", "DOCKER"] = "AMI"
    platform: Literal["Linux", "Windows", "macOS"] = "Linux"
    os_version: str = Field(default="Amazon Linux 2023", min_length=1)
    timeline: list[Step] = Field(min_length=1)
    amis: list[Ami] = []
    containers: list[Container] = []
    tags: dict[str, str] = {}

    @field_validator("tags")
    @classmethod
    def _tag_map(cls, value: dict[str, str]) -> dict[str, str]:
        if value:
            problems = model.violations(value, model.shape("TagMap"), "tags")
            if problems:
                raise ValueError("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _timeline_durations(self) -> BuildTemplate:
        *ongoing, last = self.timeline
        for index, step in enumerate(ongoing):
            if step.duration is None:
                raise ValueError(
                    f"timeline[{index}] ({step.status}) needs a duration: only the last step "
                    "lasts forever"
                )
        if last.duration is not None:
            raise ValueError(
                f"timeline[{len(ongoing)}] ({last.status}) is the last step and lasts forever; "
                "remove its duration"
            )
        return self

    @model_validator(mode="after")
    def _failed_step_named(self) -> BuildTemplate:
        for index, step in enumerate(self.timeline):
            if step.failed_step is None and step.failed_step_message is None:
                continue
            before = self.timeline[index - 1] if index > 0 else None
            steps = (
                workflow_steps(before.status, before.workflow_steps, self.type) if before else ()
            )
            if not steps:
                raise ValueError(
                    f"timeline[{index}] (FAILED) names a failing workflow step, but the step "
                    f"before it ({before.status if before else 'none'}) runs no workflow; "
                    f"only {', '.join(WORKFLOW_TYPES)} do"
                )
            names = [s.name for s in steps]
            if step.failed_step is not None and step.failed_step not in names:
                raise ValueError(
                    f"timeline[{index}].failed_step {step.failed_step!r} is not a step of the "
                    f"{WORKFLOW_TYPES[before.status] if before else ''} workflow before it; "
                    f"its steps: {', '.join(names)}"
                )
        return self

    @model_validator(mode="after")
    def _outputs_match_type(self) -> BuildTemplate:
        if self.type == "AMI" and self.containers:
            raise ValueError("an AMI image has no container outputs; use amis, or type = 'DOCKER'")
        if self.type == "DOCKER" and self.amis:
            raise ValueError("a DOCKER image has no AMI outputs; use containers, or type = 'AMI'")
        return self

    def template_fields(self) -> dict[str, Any]:
        """The template's keys as a scenario file writes them, to build an Image from."""
        return self.model_dump(include=set(BuildTemplate.model_fields), exclude_none=True)


class Image(BuildTemplate):
    """One build: its ARN (with build number), what it is, and its timeline."""

    arn: str
    pipeline: str | None = Field(default=None, pattern=RESOURCE_NAME)
    """The name of the pipeline that ran it; a `[[pipelines]]` entry of that name owns it."""
    start: Duration = 0.0
    """When the build appears, in scenario time; before that it does not exist."""
    deprecation_time: Duration | None = None
    """Scenario time served as `deprecationTime` ("can be a past or future date")."""

    @field_validator("arn")
    @classmethod
    def _build_arn(cls, value: str) -> str:
        if not BUILD_ARN.match(value):
            raise ValueError(
                "expected an image build-version ARN like "
                "'arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0/7', "
                f"got {value!r}"
            )
        return value

    @property
    def parts(self) -> dict[str, str]:
        found = BUILD_ARN.match(self.arn)
        assert found is not None
        return found.groupdict()
