"""Scenario files: which images and pipelines exist, how each build's status moves
over time, and which faults the simulated endpoint injects.

Loading validates everything up front: a mistake is reported with the file, the
field path and what was expected, before any request is served. This module knows
Image Builder, never the watcher. Builds' keys live in `scenario_images`,
pipelines' in `scenario_pipelines`.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from watcher._validation import FileError, describe, read_toml
from watcher.durations import Duration
from watcher.simulator import model
from watcher.simulator.scenario_images import (
    BUILD_ARN,
    STATUSES,
    Ami,
    BuildTemplate,
    Container,
    Image,
    Step,
    Strict,
)
from watcher.simulator.scenario_pipelines import Pipeline, Schedule

__all__ = [
    "BUILD_ARN",
    "DEFAULT_CANCEL_TAKES",
    "OPERATIONS",
    "STATUSES",
    "Ami",
    "BuildTemplate",
    "Container",
    "Events",
    "Faults",
    "Image",
    "Latency",
    "Outage",
    "Pipeline",
    "RateLimit",
    "Scenario",
    "ScenarioError",
    "Schedule",
    "Step",
    "load_scenario",
]

OPERATIONS = (
    "GetImage",
    "ListImageBuildVersions",
    "GetImagePipeline",
    "ListImagePipelines",
    "ListImagePipelineImages",
    "StartImagePipelineExecution",
    "CancelImageCreation",
    "ListWorkflowExecutions",
    "ListWorkflowStepExecutions",
    "GetWorkflowExecution",
    "GetWorkflowStepExecution",
)


LOGS_OPERATIONS = ("GetLogEvents",)
"""The CloudWatch Logs operations the simulator serves (`logs_service`): an outage
names them explicitly; by default an outage is Image Builder's."""

LOGS_ERROR_CODES = frozenset(
    {
        # GetLogEvents' errors in botocore's logs model.
        "InvalidParameterException",
        "ResourceNotFoundException",
        "ServiceUnavailableException",
        # Every service's, from the AWS "Common Errors" reference page (our reading:
        # they are in no botocore model): a policy without logs:GetLogEvents, a quota.
        "AccessDeniedException",
        "ThrottlingException",
    }
)


DEFAULT_CANCEL_TAKES = 30.0
"""`cancel_takes`' default, in scenario seconds (our reading; AWS documents none)."""


class ScenarioError(FileError):
    """A scenario file that cannot be served; the message names file, field and fix."""


Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class RateLimit(Strict):
    rate: float = Field(gt=0)
    """Requests per second (real time) the operation accepts."""
    burst: float | None = Field(default=None, ge=1)
    """Bucket size; defaults to one second's worth of `rate` (at least 1)."""


class Latency(Strict):
    fixed: Duration = 0.0
    random: Duration = 0.0
    """Up to this much more, drawn uniformly per request."""


COMMON_AUTH_ERRORS = {
    "ExpiredTokenException": 403,
    "UnrecognizedClientException": 403,
}
"""Credential errors every AWS service can answer, with their HTTP status. They are
in no service's botocore model (Image Builder's lists only its own error shapes);
codes and statuses are our reading of the AWS "Common Errors" reference page."""


def _known_code(code: str, known: Iterable[str], what: str) -> str:
    """`code` if it is one of `known`; else a ValueError naming the nearest one."""
    choices = sorted(known)
    if code not in choices:
        hint = difflib.get_close_matches(code, choices, n=1)
        guess = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(f"{code!r} is not {what}{guess}; expected one of {', '.join(choices)}")
    return code


class Outage(Strict):
    """From `start` until `end` (scenario time), every request to `operations` is
    answered with `code`: access denied until a policy is fixed, credentials
    rejected until they are rotated, the service down for a while."""

    code: str
    start: Duration = 0.0
    end: Duration
    operations: list[str] = Field(default_factory=lambda: list(OPERATIONS))

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        known = model.error_codes() | COMMON_AUTH_ERRORS.keys() | LOGS_ERROR_CODES
        return _known_code(value, known, "an error code the simulator answers")

    @field_validator("operations")
    @classmethod
    def _operations(cls, value: list[str]) -> list[str]:
        for name in value:
            _known_operation(name, OPERATIONS + LOGS_OPERATIONS)
        return value

    @model_validator(mode="after")
    def _ends_after_start(self) -> Outage:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end:g}s) must come after start ({self.start:g}s)")
        return self


def _known_operation(name: str, known: tuple[str, ...] = OPERATIONS) -> str:
    if name not in known:
        hint = difflib.get_close_matches(name, known, n=1)
        guess = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(
            f"{name!r} is not a simulated operation{guess}; expected one of {', '.join(known)}"
        )
    return name


class Faults(Strict):
    rate_limits: dict[str, RateLimit] = Field(default_factory=dict)
    errors: dict[str, Probability] = Field(default_factory=dict)
    """Per error code, the probability that a request is answered with it."""
    latency: Latency = Latency()
    dropped_connections: Probability = 0.0
    malformed_bodies: Probability = 0.0
    short_pages: Probability = 0.0
    """Chance that a List page holds fewer items than maxResults yet carries nextToken."""
    outages: list[Outage] = Field(default_factory=list)
    """Windows of scenario time in which every request is answered with one error."""

    @field_validator("rate_limits")
    @classmethod
    def _operations(cls, value: dict[str, RateLimit]) -> dict[str, RateLimit]:
        for name in value:
            _known_operation(name)
        return value

    @field_validator("errors")
    @classmethod
    def _error_codes(cls, value: dict[str, float]) -> dict[str, float]:
        for code in value:
            _known_code(code, model.error_codes(), "an Image Builder error code")
        return value

    @model_validator(mode="after")
    def _probabilities_fit(self) -> Faults:
        # short_pages is left out: it is a chance per page, not an outcome of a request.
        total = sum(self.errors.values()) + self.dropped_connections + self.malformed_bodies
        if total > 1.0 + 1e-9:
            raise ValueError(
                f"errors, dropped_connections and malformed_bodies add up to {total:g}; "
                "they are chances for one request and must add up to at most 1"
            )
        return self


class Events(Strict):
    """`[events]`: how the EventBridge events pushed to an SQS queue (`Simulator(...,
    events_queue=URL)`, `ibwatch simulate --events-queue URL`) go astray. EventBridge
    delivers Image Builder's events "best effort" (EventBridge events reference, "EC2
    Image Builder events"), so a consumer must live with each of these. Chances per
    status change, drawn from the scenario's seed."""

    loss: Probability = 0.0
    """Chance that a change's message is never sent."""
    duplicates: Probability = 0.0
    """Chance that a message that is sent is sent twice (the same event id)."""
    reorder: Probability = 0.0
    """Chance that a message is held back and sent after the next one."""


class Scenario(Strict):
    """What the simulated endpoint serves; see config/demo-scenario.toml."""

    name: str = "scenario"
    description: str = ""
    seed: int = 0
    time_scale: float = Field(default=1.0, gt=0)
    """Scenario seconds per real second: 60 plays a 40-minute build in 40 seconds."""
    cancel_takes: Duration = DEFAULT_CANCEL_TAKES
    """Scenario time from a CancelImageCreation to the build showing CANCELLED.
    botocore's model: "Cancellation is asynchronous: the request returns immediately,
    then Image Builder stops the running build and moves the image to the CANCELLED
    state." AWS documents no duration: the default is our reading (stopping the build
    instance takes a while), and 0 makes it immediate."""
    faults: Faults = Faults()
    events: Events = Events()
    images: list[Image] = Field(default_factory=list)
    pipelines: list[Pipeline] = Field(default_factory=list)

    @field_validator("cancel_takes")
    @classmethod
    def _finite_cancel(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(
                f"cancel_takes must be a finite duration such as '30s' or 0, got {value}"
            )
        return value

    @model_validator(mode="after")
    def _unique_arns(self) -> Scenario:
        seen: set[str] = set()
        for index, image in enumerate(self.images):
            if image.arn in seen:
                raise ValueError(f"images[{index}].arn {image.arn!r} appears twice")
            seen.add(image.arn)
        return self

    @model_validator(mode="after")
    def _pipelines_fit(self) -> Scenario:
        arns: set[str] = set()
        names: dict[str, Pipeline] = {}
        for index, pipeline in enumerate(self.pipelines):
            if pipeline.arn in arns:
                raise ValueError(f"pipelines[{index}].arn {pipeline.arn!r} appears twice")
            arns.add(pipeline.arn)
            name = pipeline.pipeline_name
            if name in names:
                raise ValueError(
                    f"pipelines[{index}].name {name!r} appears twice; images name their "
                    "pipeline by name, so names must be unique"
                )
            names[name] = pipeline
        for index, image in enumerate(self.images):
            owner = names.get(image.pipeline or "")
            if owner is None:
                continue
            parts, home = image.parts, owner.image_parts
            if any(parts[k] != home[k] for k in ("partition", "region", "account")):
                raise ValueError(
                    f"images[{index}] names pipeline {owner.pipeline_name!r}, which lives in "
                    f"another partition, region or account ({owner.arn})"
                )
            if image.start < owner.created:
                raise ValueError(
                    f"images[{index}] starts at {image.start:g}s, before its pipeline "
                    f"{owner.pipeline_name!r} is created at {owner.created:g}s"
                )
        return self


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a scenario file; ScenarioError says what is wrong and where."""
    document = _read(path)
    try:
        return Scenario.model_validate(document)
    except ValidationError as exc:
        raise ScenarioError(path, _with_key_hints(exc)) from None


def _read(path: Path | str) -> dict[str, Any]:
    try:
        return read_toml(path)
    except FileError as exc:
        raise ScenarioError(exc.path, exc.problems) from None


_UNKNOWN_KEY = "unknown key (check its spelling and the documented keys)"


def _with_key_hints(error: ValidationError) -> list[str]:
    """`describe`'s lines, with "did you mean" added to each misspelled key."""
    problems = describe(error)
    for index, item in enumerate(error.errors(include_url=False)):
        if item["type"] != "extra_forbidden":
            continue
        # pydantic adds the tried type's name for unions and function validators.
        *where, key = (p for p in item["loc"] if not (isinstance(p, str) and "[" in p))
        keys = _keys_at(Scenario, tuple(where))
        hint = difflib.get_close_matches(str(key), keys, n=1)
        if hint:
            problems[index] = problems[index].replace(
                _UNKNOWN_KEY, f"unknown key (did you mean {hint[0]!r}?)"
            )
        elif keys:
            # Nothing close (`for` where `duration` was meant): the keys it takes.
            problems[index] = problems[index].replace(
                _UNKNOWN_KEY, f"unknown key; expected one of {', '.join(keys)}"
            )
    return problems


def _keys_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys the model at `loc` (below `root`) accepts; [] where that is not a model."""
    current: Any = root
    for part in loc:
        if isinstance(part, int):
            current = _inner_model(current, list)
        elif isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            if field is None:
                return []
            current = field.annotation
        else:
            current = _inner_model(current, dict)
        if current is None:
            return []
    current = _inner_model(current, None)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _inner_model(annotation: Any, container: type | None) -> Any:
    """The model inside `list[M]`, `dict[str, M]`, `M | None`, or `M` itself."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation if container is None else None
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg, container)
            if found is not None:
                return found
        return None
    if container is not None and origin is container:
        return typing.get_args(annotation)[-1]
    return None
