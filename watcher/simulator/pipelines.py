"""Image pipelines over scenario time: when each one runs, what its runs are, and
whether it is enabled.

Scheduled runs are materialised lazily, up to the scenario time being asked
about, so a schedule without an end costs nothing until its runs are due and
build numbers are handed out in the order runs start. Pure bookkeeping, like the
catalog: no clock, no I/O.

Auto-disable follows the model's ImagePipeline.consecutiveFailures: "If the
pipeline execution fails, Image Builder increments the number of consecutive
failures. If the failure count reaches the limit defined in the AutoDisablePolicy,
Image Builder disables the pipeline", "If the pipeline execution is successful,
the number of consecutive failures resets to zero", a manual run that succeeds
also resets it, and "If the pipeline runs manually and fails, the count remains
the same". Our reading for the rest: a run counts at the moment it first shows
FAILED or AVAILABLE, a CANCELLED run counts as neither, and the pipeline turns
DISABLED at the moment the failure that reaches the limit lands.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property

from watcher.simulator.catalog import Build, BuildType, Catalog, Source
from watcher.simulator.scenario_images import Image
from watcher.simulator.scenario_pipelines import Pipeline


class NeverSettles(RuntimeError):
    """The scenario has a schedule that runs forever, so it has no settled moment."""


@dataclass(frozen=True)
class _Run:
    """What auto-disable and settling need of a run, real or predicted."""

    scheduled: bool
    outcome: tuple[float, str] | None
    settles: float


class PipelineRuns:
    """One pipeline of the scenario and every run it has made so far."""

    def __init__(self, spec: Pipeline) -> None:
        self.spec = spec
        self.arn = spec.arn
        self.name = spec.pipeline_name
        self.source = Source(spec.arn, self.name)
        self.runs: list[Build] = []
        self._ticks_done = 0
        self._stopped = spec.schedule is None

    def exists(self, t: float) -> bool:
        return self.spec.created <= t

    def adopt(self, build: Build) -> None:
        """Count a build declared in `[[images]]` (or started like one) as a run."""
        build.source = self.source
        self.runs.append(build)

    # -- runs -----------------------------------------------------------

    def advance(self, t: float, catalog: Catalog) -> None:
        """Start every scheduled run due by scenario time t that has not started yet."""
        if self._stopped:
            return
        if self.spec.status != "ENABLED":
            self._stopped = True
            return
        # The failure count is walked once, in time order, alongside the ticks: a
        # run's outcome only ever lands after it starts, and nothing else changes
        # the runs during this call, so each tick sees every outcome up to it.
        pending = [(r.outcome[0], r.outcome[1], r.scheduled) for r in self._records() if r.outcome]
        heapq.heapify(pending)
        count = 0
        while (at := self._tick(self._ticks_done)) is not None and at <= t:
            while pending and pending[0][0] <= at:
                _, result, scheduled = heapq.heappop(pending)
                count = 0 if result == "AVAILABLE" else count + (1 if scheduled else 0)
                if count >= self.spec.failure_limit:
                    # Nothing enables a pipeline again here, so the schedule is over.
                    self._stopped = True
                    return
            self._ticks_done += 1
            run = self._run(at, catalog, "SCHEDULED", self.spec.tags)
            outcome = run.outcome()
            if outcome is not None:
                heapq.heappush(pending, (outcome[0], outcome[1], True))
        if at is None:
            self._stopped = True

    def start(self, t: float, catalog: Catalog, tags: Mapping[str, str]) -> Build:
        """A run started by a caller: StartImagePipelineExecution's model doc says "You
        can start a build this way whether the pipeline is enabled or disabled", and
        of imageTags: "Builds that you start manually use the tags from the
        StartImagePipelineExecution request instead"."""
        return self._run(t, catalog, "USER_INITIATED", tags)

    def _run(
        self, t: float, catalog: Catalog, build_type: BuildType, tags: Mapping[str, str]
    ) -> Build:
        number = catalog.next_build_number(self.spec.image)
        image = Image.model_validate(
            {
                **self.spec.template_fields(),
                "tags": dict(tags),
                "arn": f"{self.spec.image}/{number}",
                "pipeline": self.name,
                "start": t,
            }
        )
        build = catalog.add(image, t, build_type=build_type, source=self.source)
        self.runs.append(build)
        return build

    def visible_runs(self, t: float) -> list[Build]:
        """The runs that exist at t, newest first."""
        return sorted(
            (b for b in self.runs if b.started <= t), key=lambda b: b.sort_key, reverse=True
        )

    def last_run(self, t: float) -> Build | None:
        runs = self.visible_runs(t)
        return runs[0] if runs else None

    # -- status ---------------------------------------------------------

    def status(self, t: float) -> str:
        return "ENABLED" if self._enabled_at(t, self._records()) else "DISABLED"

    def disabled_at(self) -> float | None:
        """When auto-disable turned (or, as runs already under way end, will turn) it off."""
        return _disabled_at(self.spec, self._records())

    def consecutive_failures(self, t: float) -> int:
        return _failure_count(self._records(), t)

    def updated(self, t: float) -> float:
        """dateUpdated: our reading is the auto-disable moment, else creation."""
        disabled = self.disabled_at()
        return disabled if disabled is not None and disabled <= t else self.spec.created

    def next_run(self, t: float) -> float | None:
        """When the next scheduled run starts, if the pipeline is enabled at t."""
        if self.spec.schedule is None or self.status(t) != "ENABLED":
            return None
        index = self._ticks_done
        while (at := self._tick(index)) is not None and at <= t:
            index += 1
        return at

    def upcoming(self) -> float | None:
        """The moment of the next scheduled run not yet started (for narration)."""
        return None if self._stopped else self._tick(self._ticks_done)

    def settles_by(self) -> float:
        """Scenario time by which every run, started or still scheduled, is in its
        last step, assuming nobody starts or cancels one. Raises NeverSettles for a
        schedule without `until` whose runs do not fail it into DISABLED."""
        records = self._records()
        latest = max((r.settles for r in records), default=-math.inf)
        index = self._ticks_done
        while not self._stopped and (at := self._tick(index)) is not None:
            if not self._enabled_at(at, records):
                break
            outcome, settles = self._template_offsets
            failing = outcome is not None and outcome[1] == "FAILED"
            if self.spec.schedule is not None and self.spec.schedule.until is None and not failing:
                raise NeverSettles(
                    f"pipeline {self.name!r} runs every {self.spec.schedule.every:g}s without "
                    "an `until`, so the scenario never settles"
                )
            shifted = None if outcome is None else (at + outcome[0], outcome[1])
            records.append(_Run(True, shifted, at + settles))
            latest = max(latest, at + settles)
            index += 1
        return latest

    # -- internals ------------------------------------------------------

    def _tick(self, index: int) -> float | None:
        schedule = self.spec.schedule
        if schedule is None:
            return None
        at = self.spec.first_run + index * schedule.every
        return at if schedule.until is None or at <= schedule.until else None

    def _enabled_at(self, t: float, records: Iterable[_Run]) -> bool:
        if self.spec.status != "ENABLED":
            return False
        disabled = _disabled_at(self.spec, records)
        return disabled is None or disabled > t

    def _records(self) -> list[_Run]:
        return [_Run(b.build_type == "SCHEDULED", b.outcome(), b.settled_by()) for b in self.runs]

    @cached_property
    def _template_offsets(self) -> tuple[tuple[float, str] | None, float]:
        """A run's outcome and settling moment, relative to its start."""
        image = Image.model_validate({**self.spec.template_fields(), "arn": f"{self.spec.image}/1"})
        build = Build(image, 0.0)
        return build.outcome(), build.settled_by()


def _outcomes(records: Iterable[_Run]) -> list[tuple[float, str, bool]]:
    return sorted((r.outcome[0], r.outcome[1], r.scheduled) for r in records if r.outcome)


def _disabled_at(spec: Pipeline, records: Iterable[_Run]) -> float | None:
    if spec.schedule is None:
        return None  # only scheduled runs count, so an unscheduled pipeline never trips
    count = 0
    for at, result, scheduled in _outcomes(records):
        if result == "AVAILABLE":
            count = 0
        elif scheduled:
            count += 1
            if count >= spec.failure_limit:
                return at
    return None


def _failure_count(records: Iterable[_Run], t: float) -> int:
    count = 0
    for at, result, scheduled in _outcomes(records):
        if at > t:
            break
        if result == "AVAILABLE":
            count = 0
        elif scheduled:
            count += 1
    return count


class Pipelines:
    """Every pipeline of the scenario, by ARN and by name."""

    def __init__(self, specs: Iterable[Pipeline], catalog: Catalog) -> None:
        self._by_arn = {spec.arn: PipelineRuns(spec) for spec in specs}
        self._by_name = {runs.name: runs for runs in self._by_arn.values()}
        for build in catalog:
            owner = self.named(build.image.pipeline)
            if owner is not None:
                owner.adopt(build)

    def __iter__(self) -> Iterator[PipelineRuns]:
        return iter(self._by_arn.values())

    def named(self, name: str | None) -> PipelineRuns | None:
        return self._by_name.get(name) if name is not None else None

    def get(self, arn: str, t: float) -> PipelineRuns | None:
        """The pipeline with this ARN, if it exists at t."""
        runs = self._by_arn.get(arn)
        return runs if runs is not None and runs.exists(t) else None

    def visible(self, t: float) -> list[PipelineRuns]:
        """The pipelines that exist at t, newest first (our reading; the model gives
        no order)."""
        existing = [p for p in self._by_arn.values() if p.exists(t)]
        return sorted(existing, key=lambda p: (p.spec.created, p.arn), reverse=True)

    def advance(self, t: float, catalog: Catalog) -> None:
        # Pipelines that build the same image version take turns in time order, so
        # its build numbers still follow the order its runs start.
        sharing: dict[str, list[PipelineRuns]] = {}
        for runs in self:
            sharing.setdefault(runs.spec.image, []).append(runs)
        for group in sharing.values():
            while True:
                due = sorted(
                    (at, runs.arn, runs)
                    for runs in group
                    if (at := runs.upcoming()) is not None and at <= t
                )
                if not due:
                    break
                later = [at for at, _, _ in due[1:]]
                due[0][2].advance(min([t, *later]), catalog)
