"""Discovery: the daemon's sources of builds. Version ARNs and pipelines are listed
every `discovery_interval`, and each build found is handed to the engine to be
watched by its own build ARN.

A source only adds builds; GetImage stays the truth about each of them. Costs,
per interval: a version ARN, one ListImageBuildVersions per page; a pipeline, one
GetImagePipeline, plus ListImagePipelineImages (every page) only when its
`dateLastRun` changed or is not known yet; `image-pipeline/*`, ListImagePipelines
(every page; the list carries each pipeline's `dateLastRun`, so no
GetImagePipeline) plus the same conditional listing per pipeline.

Never polls a build itself and never decides what is an event.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import anyio
import structlog

from watcher.aws import Page
from watcher.clock import Clock
from watcher.engine import Engine
from watcher.errors import ApiError
from watcher.listing import BuildLister, all_pages, builds_of_version
from watcher.model import ImageSnapshot, PipelineArn, PipelineInfo
from watcher.store.base import Store

if TYPE_CHECKING:
    from watcher.metrics import Metrics

log = structlog.get_logger("ibwatch")

DISABLED = "DISABLED"


class DiscoveryEdge(BuildLister, Protocol):
    async def get_pipeline(self, pipeline_arn: str) -> PipelineInfo: ...

    async def list_pipelines(
        self, region: str, *, next_token: str | None = None
    ) -> Page[PipelineInfo]: ...

    async def list_pipeline_images(
        self, pipeline_arn: str, *, next_token: str | None = None
    ) -> Page[ImageSnapshot]: ...


@dataclass(frozen=True)
class Sources:
    """What discovery follows: version ARNs (wildcards allowed) and pipeline ARNs
    (`.../image-pipeline/*` for every pipeline of an account and region)."""

    versions: tuple[str, ...] = ()
    pipelines: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.versions or self.pipelines)


class Discovery:
    def __init__(
        self,
        *,
        edge: DiscoveryEdge,
        engine: Engine,
        store: Store,
        clock: Clock,
        interval: float,
        sources: Sources,
        metrics: Metrics | None = None,
        concurrency: int = 8,
    ) -> None:
        self._edge = edge
        self._engine = engine
        self._store = store
        self._clock = clock
        self._interval = interval
        self.sources = sources
        self._metrics = metrics
        self._concurrency = max(1, concurrency)
        self._last_run: dict[str, str] = {}
        """Pipeline ARN -> the `dateLastRun` whose builds were listed."""
        self._status: dict[str, str] = {}
        self._failing: dict[str, str] = {}
        """Source -> the error it failed with last, so a lasting failure is logged once."""
        self.passes = 0
        self._one_pass_at_a_time = anyio.Lock()
        self._resting: anyio.CancelScope | None = None

    async def run(self) -> None:
        """List every source now and then every interval, until cancelled."""
        while True:
            started = self._clock.monotonic()
            await self.discover_once()
            # Sleep the rest of the interval, so a slow pass does not make it drift;
            # new sources (a reload) end the sleep at once.
            with anyio.CancelScope() as self._resting:
                await self._clock.sleep(
                    max(0.0, self._interval - (self._clock.monotonic() - started))
                )
            self._resting = None

    def set_sources(self, sources: Sources) -> None:
        """Follow these sources from now on, listing them at once."""
        changed = sources != self.sources
        self.sources = sources
        if changed and self._resting is not None:
            self._resting.cancel()

    async def discover_once(self) -> None:
        """One pass over every source; a failing source is logged and skipped."""
        async with self._one_pass_at_a_time:
            await self._pass()

    async def _pass(self) -> None:
        baselined = await self._store.baselined_sources()
        gate = anyio.CapacityLimiter(self._concurrency)
        sources = self.sources
        async with anyio.create_task_group() as group:
            for version in sources.versions:
                group.start_soon(self._follow, version, self._version, baselined, gate)
            for pipeline in sources.pipelines:
                group.start_soon(self._follow, pipeline, self._pipelines, baselined, gate)
        self.passes += 1

    async def _follow(
        self,
        source: str,
        list_source: Callable[[str, bool, anyio.CapacityLimiter], Awaitable[None]],
        baselined: set[str],
        gate: anyio.CapacityLimiter,
    ) -> None:
        baseline = source not in baselined
        try:
            await list_source(source, baseline, gate)
        except ApiError as exc:
            message = f"{type(exc).__name__}: {exc}"
            if self._failing.get(source) != message:
                log.warning("discovery.failed", source=source, error=message, code=exc.code)
            self._failing[source] = message
            return
        if self._failing.pop(source, None) is not None:
            log.info("discovery.recovered", source=source)
        if baseline:
            # Only once the whole first listing is recorded: a crash before this
            # point makes the next start take the baseline again, losing nothing.
            await self._store.mark_baselined(source, self._clock.now().timestamp())

    async def _version(self, source: str, baseline: bool, gate: anyio.CapacityLimiter) -> None:
        async with gate:
            builds = await builds_of_version(self._edge, self._engine.call, source)
        await self._add(source, builds, baseline)

    async def _pipelines(self, source: str, baseline: bool, gate: anyio.CapacityLimiter) -> None:
        wanted = PipelineArn.parse(source)
        if wanted.is_wildcard:
            async with gate:
                found = await all_pages(
                    self._engine.call,
                    functools.partial(self._list_pipelines, wanted.region),
                    f"pipelines of {source}",
                )
            pipelines = [p for p in found if _same_account(PipelineArn.parse(p.arn), wanted)]
        else:
            async with gate:
                pipelines = [await self._engine.call(lambda: self._edge.get_pipeline(source))]
        for pipeline in pipelines:
            await self._pipeline(pipeline, baseline, gate)

    def _list_pipelines(self, region: str, token: str | None) -> Awaitable[Page[PipelineInfo]]:
        return self._edge.list_pipelines(region, next_token=token)

    async def _pipeline(
        self, pipeline: PipelineInfo, baseline: bool, gate: anyio.CapacityLimiter
    ) -> None:
        self._note_status(pipeline)
        last_run = pipeline.date_last_run
        if last_run is None or self._last_run.get(pipeline.arn) == last_run:
            return  # never ran, or no run since its builds were listed
        async with gate:
            builds = await all_pages(
                self._engine.call,
                functools.partial(self._list_pipeline_images, pipeline.arn),
                f"builds of {pipeline.arn}",
            )
        await self._add(pipeline.arn, builds, baseline)
        self._last_run[pipeline.arn] = last_run

    def _list_pipeline_images(
        self, pipeline_arn: str, token: str | None
    ) -> Awaitable[Page[ImageSnapshot]]:
        return self._edge.list_pipeline_images(pipeline_arn, next_token=token)

    async def _add(self, source: str, builds: Sequence[ImageSnapshot], baseline: bool) -> None:
        added = await self._engine.add_discovered(source, builds, baseline=baseline)
        if added:
            log.info("discovery.found", source=source, builds=len(added), baseline=baseline or None)

    def _note_status(self, pipeline: PipelineInfo) -> None:
        """Log a pipeline turning DISABLED once, and count it: Image Builder disables
        a pipeline after consecutive scheduled failures, and then nothing builds."""
        before = self._status.get(pipeline.arn)
        self._status[pipeline.arn] = pipeline.status
        if pipeline.status == DISABLED and before != DISABLED:
            log.warning(
                "pipeline.disabled",
                pipeline=pipeline.arn,
                name=pipeline.name,
                last_run_status=pipeline.last_run_status,
                note="its schedule no longer starts builds until it is enabled again",
            )
            if self._metrics is not None:
                self._metrics.pipelines_disabled.inc()
        elif before == DISABLED and pipeline.status != DISABLED:
            log.info("pipeline.enabled", pipeline=pipeline.arn, name=pipeline.name)


def _same_account(found: PipelineArn, wanted: PipelineArn) -> bool:
    return (found.partition, found.region, found.account) == (
        wanted.partition,
        wanted.region,
        wanted.account,
    )
