"""`[watch]`: what to watch (build ARNs, version ARNs, pipelines) and how hard to poll."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    Field,
    PlainSerializer,
    ValidationInfo,
    field_validator,
    model_validator,
)

from watcher._validation import did_you_mean
from watcher.config._base import STATUSES, FiniteDuration, PositiveDuration, Strict, problems_error
from watcher.model import Arn, ImageStatus, PipelineArn, check_listable

DEFAULT_INTERVALS: Mapping[str, float] = MappingProxyType(
    {
        "default": 30.0,
        "PENDING": 30.0,
        "BUILDING": 60.0,
        "TESTING": 60.0,
        "DISTRIBUTING": 30.0,
        "AVAILABLE": 300.0,
    }
)
"""Poll intervals (seconds) used unless `[watch.intervals]` overrides them: builds
sit in BUILDING and TESTING for many minutes; a version ARN stays watched once
AVAILABLE, waiting for its next build, and needs no fast polling."""


def _arn(value: str) -> str:
    # InvalidArn is a ValueError whose message already says what an image ARN looks like.
    # A wildcard of an image owned by AWS is refused too: listed in the caller's own
    # account, it would find no build, ever.
    return str(check_listable(Arn.parse(value)))


def _pipeline_arn(value: str) -> str:
    return str(PipelineArn.parse(value))


def _interval_key(key: str) -> str:
    if key == "default" or key in STATUSES:
        return key
    raise ValueError(
        f"{key!r} is not an image status{did_you_mean(key, ['default', *STATUSES])}; "
        f"expected 'default' or one of {', '.join(STATUSES)}"
    )


def _with_defaults(intervals: Mapping[str, float]) -> Mapping[str, float]:
    # Setting `default` means "this, unless I say otherwise": the built-in
    # per-status values then step aside, or `default = "5s"` would still poll
    # BUILDING every minute. Without `default`, each key replaces its built-in.
    base = (
        {"default": DEFAULT_INTERVALS["default"]} if "default" in intervals else DEFAULT_INTERVALS
    )
    merged = {**base, **intervals}
    order = ["default", *STATUSES]
    return MappingProxyType({key: merged[key] for key in order if key in merged})


_IntervalKey = Annotated[str, AfterValidator(_interval_key)]
Intervals = Annotated[
    Mapping[_IntervalKey, PositiveDuration],
    AfterValidator(_with_defaults),
    PlainSerializer(dict, return_type=dict[str, float]),
]


class RetryConfig(Strict):
    """One get_image call's retries: full-jitter exponential backoff (tenacity)."""

    attempts: int = Field(default=5, ge=1)
    """Tries per call, the first included: 1 means no retry."""
    base: PositiveDuration = 1.0
    cap: PositiveDuration = 20.0

    @model_validator(mode="after")
    def _cap_covers_base(self) -> Self:
        if self.cap < self.base:
            raise problems_error(
                "RetryConfig",
                [
                    (
                        ("cap",),
                        f"must be at least base ({self.base:g}s), got {self.cap:g}s",
                        self.cap,
                    )
                ],
            )
        return self


class WatchConfig(Strict):
    """What to watch and how hard to poll."""

    arns: tuple[Annotated[str, AfterValidator(_arn)], ...] = ()
    """Image ARNs, normalised, each once. A build-version ARN is watched itself; a
    version ARN (wildcards allowed) is a source: discovery follows every build of it."""
    pipelines: tuple[Annotated[str, AfterValidator(_pipeline_arn)], ...] = ()
    """Image pipeline ARNs whose builds discovery follows; `.../image-pipeline/*` is
    every pipeline of that account and region, including ones created later."""
    discovery_interval: PositiveDuration = 60.0
    """How often version ARNs and pipelines are listed for new builds."""
    not_found_grace: FiniteDuration = 120.0
    """A build that answers NotFound within this long of first being polled is
    retried (a just-started build can 404 for a moment); after it, it is parked."""
    paused_retry_cap: PositiveDuration = 300.0
    """The daemon polls an ARN refused on credentials or access again with backoff,
    waiting at most this long: slow enough not to hammer IAM with a broken role,
    quick enough that a late IRSA token is noticed within minutes. SIGHUP polls at once."""
    concurrency: int = Field(default=16, ge=1, le=1024)
    max_tps: float = Field(default=10.0, ge=0.01, allow_inf_nan=False)
    """GetImage requests per second across all workers (the rate limiter's ceiling)."""
    jitter: float = Field(default=0.1, ge=0.0, le=0.5)
    """Each interval is stretched or shrunk by up to this fraction, at random."""
    failed_recheck_interval: PositiveDuration = 600.0
    failed_recheck_window: FiniteDuration = 21600.0
    """A FAILED build is re-checked every interval for this long (RetryImage can
    revive it); 0 drops it at once."""
    intervals: Intervals = Field(default_factory=lambda: DEFAULT_INTERVALS)
    """Seconds between polls by status; `default` for any status not listed."""
    retry: RetryConfig = Field(default_factory=RetryConfig)

    @field_validator("arns", "pipelines")
    @classmethod
    def _unique_arns(cls, arns: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        first: dict[str, int] = {}
        repeated = []
        for index, arn in enumerate(arns):
            if arn in first:
                repeated.append(
                    (
                        (index,),
                        f"{arn!r} is already listed at watch.{info.field_name}[{first[arn]}]; "
                        "list it once",
                        arn,
                    )
                )
            first.setdefault(arn, index)
        if repeated:
            raise problems_error("WatchConfig", repeated)
        return arns

    @model_validator(mode="after")
    def _something_to_watch(self) -> Self:
        if not self.arns and not self.pipelines:
            raise problems_error(
                "WatchConfig",
                [(("arns",), "list at least one image ARN, or a pipeline in watch.pipelines", [])],
            )
        return self

    @property
    def build_arns(self) -> tuple[str, ...]:
        """The build-version ARNs in `arns`: watched themselves."""
        return tuple(arn for arn in self.arns if Arn.parse(arn).is_build)

    @property
    def version_arns(self) -> tuple[str, ...]:
        """The version ARNs in `arns`: sources whose every build is followed."""
        return tuple(arn for arn in self.arns if not Arn.parse(arn).is_build)

    def interval_for(self, status: ImageStatus) -> float:
        """Seconds between polls of a build in `status` (before jitter); `default`
        for a status without its own interval, including ones AWS adds later."""
        return self.intervals.get(str(status), self.intervals["default"])
