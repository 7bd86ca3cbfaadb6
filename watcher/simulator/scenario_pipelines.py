"""Scenario keys of `[[pipelines]]`: an image pipeline, its schedule, and the
template every run of it builds from.

Validation only. When runs happen and what they show is `pipelines.py`'s job.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from watcher.durations import Duration
from watcher.simulator import model
from watcher.simulator.scenario_images import (
    RESOURCE_NAME,
    VERSION_ARN,
    BuildTemplate,
    Strict,
)

# The model's ImagePipelineArn, pieces named.
PIPELINE_ARN = re.compile(
    r"^arn:(?P<partition>aws[^:]*):imagebuilder:(?P<region>[^:]+):"
    r"(?P<account>[0-9]{12}|aws):image-pipeline/(?P<slug>[a-z0-9-_]+)$"
)
# The model's AutoDisablePolicy: "By default, if the schedule doesn't include an
# auto-disable policy, Image Builder disables the pipeline after 5 consecutive
# failed scheduled builds."
DEFAULT_FAILURE_LIMIT = 5
_FAILURE_COUNT = model.shape("AutoDisableFailureCount").metadata


class Schedule(Strict):
    """Runs at `first`, `first + every`, ... while at most `until` (scenario times)."""

    every: Duration
    first: Duration | None = None
    """Scenario time of the first run; defaults to the pipeline's `created` + `every`."""
    until: Duration | None = None
    """The last moment a run may start; without it the schedule runs forever."""

    @field_validator("every")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("a schedule needs a positive interval, such as '30m' or '1h'")
        return value

    def expression(self) -> str:
        """The rate expression GetImagePipeline serves as `scheduleExpression`.

        AWS's rate expressions count whole minutes, hours or days; an interval that
        is not whole minutes (handy in fast tests) is served in seconds, as
        `rate(100 seconds)`, which AWS itself would not accept.
        """
        if self.every % 60:
            return f"rate({self.every:g} seconds)"
        minutes = int(self.every // 60)
        for size, unit in ((1440, "day"), (60, "hour"), (1, "minute")):
            if minutes % size == 0:
                count = minutes // size
                return f"rate({count} {unit}{'' if count == 1 else 's'})"
        raise AssertionError("unreachable: every is whole minutes")


class Pipeline(BuildTemplate):
    """An image pipeline: what it builds, when it exists, and when it runs."""

    arn: str
    name: str | None = Field(default=None, pattern=RESOURCE_NAME)
    """Defaults to the last segment of the ARN."""
    description: str | None = Field(default=None, min_length=1, max_length=1024)
    image: str
    """The image version ARN its recipe builds; each run is the next build of it."""
    created: Duration = 0.0
    """Scenario time at which the pipeline appears; before that it does not exist."""
    status: Literal["ENABLED", "DISABLED"] = "ENABLED"
    schedule: Schedule | None = None
    auto_disable_after: int | None = Field(
        default=None, ge=_FAILURE_COUNT["min"], le=_FAILURE_COUNT["max"]
    )
    """Consecutive failed scheduled runs that disable it (the model's default: 5)."""

    @field_validator("arn")
    @classmethod
    def _pipeline_arn(cls, value: str) -> str:
        if not PIPELINE_ARN.match(value):
            raise ValueError(
                "expected an image pipeline ARN like "
                "'arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/web-base-nightly', "
                f"got {value!r}"
            )
        return value

    @field_validator("image")
    @classmethod
    def _version_arn(cls, value: str) -> str:
        if not VERSION_ARN.match(value):
            raise ValueError(
                "expected the image version ARN its runs build, like "
                "'arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0' "
                f"(no build number, no wildcards), got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Pipeline:
        pipeline, image = PIPELINE_ARN.match(self.arn), VERSION_ARN.match(self.image)
        if pipeline is None or image is None:
            return self  # already reported by the field validators
        if self.name is None and not re.search(RESOURCE_NAME, pipeline["slug"]):
            raise ValueError(
                f"the ARN's last segment {pipeline['slug']!r} is not a valid pipeline name "
                "(3 to 128 characters); set name"
            )
        where = ("partition", "region", "account")
        if any(pipeline[k] != image[k] for k in where):
            raise ValueError(
                f"image {self.image!r} is not in the pipeline's partition, region and account: "
                "a pipeline builds images where it lives"
            )
        schedule = self.schedule
        if schedule is not None:
            if schedule.first is not None and schedule.first < self.created:
                raise ValueError(
                    f"schedule.first ({schedule.first:g}s) is before the pipeline is created "
                    f"({self.created:g}s)"
                )
            if schedule.until is not None and schedule.until < self.first_run:
                raise ValueError(
                    f"schedule.until ({schedule.until:g}s) is before the first run "
                    f"({self.first_run:g}s): the schedule would never run"
                )
        elif self.auto_disable_after is not None:
            raise ValueError(
                "auto_disable_after needs a schedule: only scheduled runs count as consecutive "
                "failures (the model's ImagePipeline.consecutiveFailures)"
            )
        return self

    @property
    def pipeline_name(self) -> str:
        if self.name is not None:
            return self.name
        found = PIPELINE_ARN.match(self.arn)
        assert found is not None
        return found["slug"]

    @property
    def image_parts(self) -> dict[str, str]:
        found = VERSION_ARN.match(self.image)
        assert found is not None
        return found.groupdict()

    @property
    def first_run(self) -> float:
        assert self.schedule is not None
        first = self.schedule.first
        return first if first is not None else self.created + self.schedule.every

    @property
    def failure_limit(self) -> int:
        return self.auto_disable_after or DEFAULT_FAILURE_LIMIT
