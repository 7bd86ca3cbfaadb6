"""The simulated account: its builds, its pipelines, and the changes callers make
to them (starting a pipeline, cancelling a build), with client-token idempotency.

The HTTP handlers and the in-process `Simulator` methods both act through this
class, so the two paths cannot drift apart. Pure over scenario time: the caller
says what time it is (after `advance`), nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from watcher.simulator.catalog import Build, Catalog, Source
from watcher.simulator.documents import synthetic_pipeline_arn
from watcher.simulator.pipelines import PipelineRuns, Pipelines
from watcher.simulator.scenario import Image, Scenario, Step
from watcher.simulator.wire import ApiError

NOT_FOUND = "ResourceNotFoundException"
CANCEL_REASON = "Image creation was cancelled by the simulator's caller (CancelImageCreation)"


class Account:
    """Every build and pipeline of one scenario, and what callers did to them."""

    def __init__(self, scenario: Scenario) -> None:
        self.catalog = Catalog(scenario.images)
        self.pipelines = Pipelines(scenario.pipelines, self.catalog)
        for build in self.catalog:
            name = build.image.pipeline
            if build.source is None and name is not None:
                build.source = Source(synthetic_pipeline_arn(build.image.parts, name), name)
        # (operation, client token) -> (the request's parameters, the build ARN answered)
        self._tokens: dict[tuple[str, str], tuple[object, str]] = {}
        self.cancel_takes = scenario.cancel_takes
        """Scenario seconds from CancelImageCreation to CANCELLED (`Scenario.cancel_takes`)."""

    def advance(self, t: float) -> None:
        """Materialise every scheduled run due by scenario time t."""
        self.pipelines.advance(t, self.catalog)

    # -- reads ----------------------------------------------------------

    def build(self, arn: str, t: float) -> Build:
        """A build by its build ARN, if it exists at t."""
        build = self.catalog.started(arn, t)
        if build is None:
            raise ApiError(NOT_FOUND, f"The resource {arn} cannot be found.")
        return build

    def pipeline(self, arn: str, t: float) -> PipelineRuns:
        runs = self.pipelines.get(arn, t)
        if runs is None:
            raise ApiError(NOT_FOUND, f"The resource {arn} cannot be found.")
        return runs

    # -- changes --------------------------------------------------------

    def start_pipeline(
        self, arn: str, t: float, client_token: str | None, tags: Mapping[str, str] | None = None
    ) -> str:
        """Start a run of the pipeline now; the new build's ARN.

        The model lists ResourceInUseException for StartImagePipelineExecution without
        saying when; the simulator never answers it here, so runs of one pipeline may
        overlap (our reading)."""
        request = (arn, dict(tags or {}))

        def act() -> str:
            return self.pipeline(arn, t).start(t, self.catalog, tags or {}).arn

        return self._idempotent("StartImagePipelineExecution", client_token, request, act)

    def cancel(
        self, arn: str, t: float, client_token: str | None, *, takes: float | None = None
    ) -> str:
        """Ask a build that is still being created to stop; the build's ARN, at once.

        botocore's model of CancelImageCreation: "This operation can only be used on
        images in a non-terminal state. Cancellation is asynchronous: the request
        returns immediately, then Image Builder stops the running build and moves the
        image to the CANCELLED state." So the build keeps its status for `takes`
        seconds of scenario time (default: the scenario's `cancel_takes`), then shows
        CANCELLED. AWS documents no duration; the rest is our reading too: a build
        that ends on its own before then keeps that end; a second request while one is
        under way changes nothing (the first one stands); a build already terminal is
        refused with ResourceInUseException (the model lists that error without
        saying when).
        """
        delay = self.cancel_takes if takes is None else takes

        def act() -> str:
            build = self.build(arn, t)
            if build.terminal_at(t):
                raise ApiError(
                    "ResourceInUseException",
                    f"The image {arn} is {build.status_at(t)}: only an image in a "
                    "non-terminal state can be cancelled.",
                )
            lands = t + delay
            if not build.terminal_at(lands):
                build.cancel(lands, CANCEL_REASON)
            return arn

        return self._idempotent("CancelImageCreation", client_token, arn, act)

    def start_like(self, like: str, timeline: Sequence[Step] | None, t: float) -> Build:
        """A new build of the version of build `like`, with its spec, starting at t."""
        template = self.catalog.get(like)
        if template is None:
            raise KeyError(f"no build {like} to start a new build like")
        number = self.catalog.next_build_number(template.version_arn)
        steps = timeline if timeline is not None else template.image.timeline
        # Validated again, so a timeline given here obeys the same rules as a file's.
        image = Image.model_validate(
            {
                **template.image.model_dump(),
                "arn": f"{template.version_arn}/{number}",
                "start": t,
                "timeline": [step.model_dump(exclude_none=True) for step in steps],
            }
        )
        build = self.catalog.add(image, t, source=template.source)
        owner = self.pipelines.named(image.pipeline)
        if owner is not None:
            owner.adopt(build)
        return build

    def _idempotent(
        self, operation: str, token: str | None, request: object, act: Callable[[], str]
    ) -> str:
        """The model's clientToken: "If you retry a request with the same client token,
        Image Builder returns the original response without running the operation
        again"; IdempotentParameterMismatchException: "a client token for an operation
        using parameter values that differ from a previous request". Our reading for the
        rest: a token is remembered per operation for the scenario's whole run, and only
        once its request succeeded."""
        if token is None:
            return act()
        seen = self._tokens.get((operation, token))
        if seen is not None:
            if seen[0] != request:
                raise ApiError(
                    "IdempotentParameterMismatchException",
                    f"The client token {token!r} was already used with different parameters.",
                )
            return seen[1]
        answer = act()
        # Retrying a refused request runs it again: only a success is remembered.
        self._tokens[operation, token] = (request, answer)
        return answer

    # -- the future -----------------------------------------------------

    def settles_by(self) -> float:
        """Scenario time at which every build, started or scheduled, is in its last
        step; raises NeverSettles for a schedule that runs forever."""
        latest = max((b.settled_by() for b in self.catalog), default=0.0)
        for runs in self.pipelines:
            latest = max(latest, runs.settles_by())
        return latest

    def next_change_after(self, t: float) -> float | None:
        """The next moment after t at which a build changes status or a scheduled
        run starts, as far as is known now."""
        moments = [p.begins for b in self.catalog for p in b.phases if p.begins > t]
        moments += [at for p in self.pipelines if (at := p.upcoming()) is not None and at > t]
        moments += [b.started for b in self.catalog if b.started > t]
        return min(moments, default=None)
