"""Scenario files: which images exist, how each build's status moves over time, and
which faults the simulated endpoint injects.

Loading validates everything up front: a mistake is reported with the file, the
field path and what was expected, before any request is served. This module knows
Image Builder, never the watcher.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from watcher._validation import FileError, describe, read_toml
from watcher.durations import Duration
from watcher.simulator import model

STATUSES: tuple[str, ...] = tuple(model.shape("ImageStatus").enum)
OPERATIONS = ("GetImage", "ListImageBuildVersions")

# A build-version ARN: the model's pattern for GetImage, restricted to the branch
# with a build number, with the pieces named.
BUILD_ARN = re.compile(
    r"^arn:(?P<partition>aws[^:]*):imagebuilder:(?P<region>[^:]+):"
    r"(?P<account>[0-9]{12}|aws(?:-[a-z-]+)?):image/(?P<name>[a-z0-9-_]+)/"
    r"(?P<version>[0-9]+\.[0-9]+\.[0-9]+)/(?P<build>[0-9]+)$"
)
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-[0-9]+$")
_AMI_ID = re.compile(r"^ami-[0-9a-f]{8,17}$")


class ScenarioError(FileError):
    """A scenario file that cannot be served; the message names file, field and fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class Step(_Strict):
    """One status of a build's timeline and how long the build stays in it."""

    allow_unknown_status: bool = False
    """Serve a status the model does not list (AWS adds values over time)."""
    status: str
    duration: Duration | None = None
    reason: str | None = Field(default=None, min_length=1)
    failure_context: dict[str, Any] | None = None

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
    def _failure_context_shape(self) -> Step:
        if self.failure_context is None:
            return self
        if self.status not in ("FAILED", "CANCELLED"):
            raise ValueError(
                f"failure_context is only served with FAILED or CANCELLED, not {self.status}"
            )
        shape = model.shape("ImageFailureContext")
        problems = model.violations(self.failure_context, shape, "failure_context")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class Ami(_Strict):
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


class Container(_Strict):
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


class Image(_Strict):
    """One build: its ARN (with build number), what it is, and its timeline."""

    arn: str
    type: Literal["AMI", "DOCKER"] = "AMI"
    platform: Literal["Linux", "Windows", "macOS"] = "Linux"
    os_version: str = Field(default="Amazon Linux 2023", min_length=1)
    pipeline: str | None = Field(
        default=None, pattern=r"^[-_A-Za-z0-9][-_A-Za-z0-9 ]{1,126}[-_A-Za-z0-9]$"
    )
    start: Duration = 0.0
    """When the build appears, in scenario time; before that it does not exist."""
    timeline: list[Step] = Field(min_length=1)
    amis: list[Ami] = []
    containers: list[Container] = []
    tags: dict[str, str] = {}

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

    @model_validator(mode="after")
    def _timeline_durations(self) -> Image:
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
    def _outputs_match_type(self) -> Image:
        if self.type == "AMI" and self.containers:
            raise ValueError("an AMI image has no container outputs; use amis, or type = 'DOCKER'")
        if self.type == "DOCKER" and self.amis:
            raise ValueError("a DOCKER image has no AMI outputs; use containers, or type = 'AMI'")
        return self

    @property
    def parts(self) -> dict[str, str]:
        found = BUILD_ARN.match(self.arn)
        assert found is not None
        return found.groupdict()


class RateLimit(_Strict):
    rate: float = Field(gt=0)
    """Requests per second (real time) the operation accepts."""
    burst: float | None = Field(default=None, ge=1)
    """Bucket size; defaults to one second's worth of `rate` (at least 1)."""


class Latency(_Strict):
    fixed: Duration = 0.0
    random: Duration = 0.0
    """Up to this much more, drawn uniformly per request."""


class Faults(_Strict):
    rate_limits: dict[str, RateLimit] = {}
    errors: dict[str, Probability] = {}
    """Per error code, the probability that a request is answered with it."""
    latency: Latency = Latency()
    dropped_connections: Probability = 0.0
    malformed_bodies: Probability = 0.0

    @field_validator("rate_limits")
    @classmethod
    def _operations(cls, value: dict[str, RateLimit]) -> dict[str, RateLimit]:
        for name in value:
            if name not in OPERATIONS:
                raise ValueError(
                    f"{name!r} is not a simulated operation; expected one of "
                    f"{', '.join(OPERATIONS)}"
                )
        return value

    @field_validator("errors")
    @classmethod
    def _error_codes(cls, value: dict[str, float]) -> dict[str, float]:
        known = sorted(model.error_codes())
        for code in value:
            if code not in known:
                hint = difflib.get_close_matches(code, known, n=1)
                guess = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise ValueError(
                    f"{code!r} is not an Image Builder error code{guess}; expected "
                    f"one of {', '.join(known)}"
                )
        return value

    @model_validator(mode="after")
    def _probabilities_fit(self) -> Faults:
        total = sum(self.errors.values()) + self.dropped_connections + self.malformed_bodies
        if total > 1.0 + 1e-9:
            raise ValueError(
                f"errors, dropped_connections and malformed_bodies add up to {total:g}; "
                "they are chances for one request and must add up to at most 1"
            )
        return self


class Scenario(_Strict):
    """What the simulated endpoint serves; see config/demo-scenario.toml."""

    name: str = "scenario"
    description: str = ""
    seed: int = 0
    time_scale: float = Field(default=1.0, gt=0)
    """Scenario seconds per real second: 60 plays a 40-minute build in 40 seconds."""
    faults: Faults = Faults()
    images: list[Image] = []

    @model_validator(mode="after")
    def _unique_arns(self) -> Scenario:
        seen: set[str] = set()
        for index, image in enumerate(self.images):
            if image.arn in seen:
                raise ValueError(f"images[{index}].arn {image.arn!r} appears twice")
            seen.add(image.arn)
        return self


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a scenario file; ScenarioError says what is wrong and where."""
    document = _read(path)
    try:
        return Scenario.model_validate(document)
    except ValidationError as exc:
        raise ScenarioError(path, describe(exc)) from None


def _read(path: Path | str) -> dict[str, Any]:
    try:
        return read_toml(path)
    except FileError as exc:
        raise ScenarioError(exc.path, exc.problems) from None
