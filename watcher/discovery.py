"""Discovery: the daemon's sources of builds. Version ARNs and pipelines are listed
every `discovery_interval`, and each build found is handed to the engine to be
watched by its own build ARN.

A source only adds builds; GetImage stays the truth about each of them. Costs,
per interval: a version ARN, one ListImageBuildVersions per page; a pipeline, one
GetImagePipeline, plus ListImagePipelineImages (every page) only when its
`dateLastRun` changed or is not known yet; `image-pipeline/*`, ListImagePipelines
(every page; the list carries each pipeline's `dateLastRun`, so no
GetImagePipeline) plus the same conditional listing per pipeline.

Each of those calls is counted in `ibwatch_discovery_calls_total` (each page and each
retry is one call); after each pass, `ibwatch_pipelines_followed` says how many
pipelines it follows by status and `ibwatch_discovery_sources_failing` how many
sources fail to list, and `failing()` (/status) names them with their errors. A
source whose listing shows only other accounts' pipelines or builds fails too
(`OtherAccount`): the credentials that listed it read another account.

Never polls a build itself and never decides what is an event.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol, TypeVar

import anyio
import structlog

from watcher.aws import Page
from watcher.clock import Clock
from watcher.credentials import DEFAULT_ACCOUNT, account_field
from watcher.engine import Discovered, Engine
from watcher.errors import (
    AccessDenied,
    ApiError,
    BadCredentials,
    FinalError,
    Misconfigured,
    Unavailable,
)
from watcher.listing import BuildLister, all_pages, builds_of_version
from watcher.metrics import OUTCOMES, call_outcome, region_of
from watcher.model import Arn, ImageSnapshot, InvalidArn, PipelineArn, PipelineInfo
from watcher.store.base import Store

if TYPE_CHECKING:
    import prometheus_client

    from watcher.metrics import Metrics, Readiness

log = structlog.get_logger("ibwatch")

DISABLED = "DISABLED"
_NOT_REACHED = (AccessDenied, BadCredentials, Unavailable, Misconfigured)
"""Failures that mean the API was not usefully reached: they make /readyz say so.
Any other ApiError is an answer of the API (a NotFound, a refusal, a throttle), which
proves it reached, as `watcher.metrics.MeteredSource` counts a poll's."""
_RUN_SKEW = timedelta(minutes=1)
"""How much earlier than `dateLastRun` the run's build may say it was created."""
_RELIST_TRIES = 3
T = TypeVar("T")


class OtherAccount(FinalError):
    """A source of one account listed with credentials that read another: the listing
    answered, with only another account's pipelines or builds.

    ListImageBuildVersions without `imageVersionArn` "returns build versions for all
    of the images in your account", and ListImagePipelines takes no account either
    (botocore's model): both list the caller's own account, so a source of an
    account the credentials do not read would otherwise find nothing, silently.
    When the caller's account has none to list, the answer is empty and this cannot
    be told apart from a source with nothing yet."""


class DiscoveryEdge(BuildLister, Protocol):
    async def get_pipeline(self, pipeline_arn: str) -> PipelineInfo: ...

    async def list_pipelines(
        self, region: str, *, next_token: str | None = None, account: str | None = None
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


@dataclass(frozen=True)
class SourceFailure:
    """A source whose last listing failed (`Discovery.failing`)."""

    source: str
    """The version ARN or pipeline ARN (a pipeline of an `image-pipeline/*` too)."""
    error: ApiError | InvalidArn
    since: datetime
    """When its listing first failed, of the failures in a row that go on now."""

    @property
    def message(self) -> str:
        return f"{type(self.error).__name__}: {self.error}"


def _operations(source: str) -> tuple[str, ...]:
    """The API operations following `source` makes (their counters start at 0)."""
    if ":image-pipeline/" not in source:
        return ("ListImageBuildVersions",)
    if source.endswith("/*"):
        return ("ListImagePipelines", "ListImagePipelineImages")
    return ("GetImagePipeline", "ListImagePipelineImages")


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
        readiness: Readiness | None = None,
        concurrency: int = 8,
        history_horizon: float = math.inf,
        account_of: Callable[[str], str] | None = None,
    ) -> None:
        """`account_of`: the `account` label of calls about an ARN (the credentials
        that read it: `AwsImageSource.account_of`); without it, "default"."""
        self._edge = edge
        self._engine = engine
        self._store = store
        self._clock = clock
        self._interval = interval
        self.sources = sources
        self._metrics = metrics
        self._readiness = readiness
        self._concurrency = max(1, concurrency)
        self._history_horizon = history_horizon
        """Seconds: a build that ended and was created longer ago than this is history
        whenever it is listed. The store forgets ended builds after as long
        (`[state] keep_events`), so one listed again must not be news again."""
        self._last_run: dict[str, str] = {}
        """Pipeline ARN -> the `dateLastRun` whose builds were listed."""
        self._status: dict[str, str] = {}
        """Pipeline ARN -> its status as last read, while it is followed."""
        self._members: dict[str, frozenset[str]] = {}
        """Pipeline source -> the pipelines it follows: itself once read, or those its
        `image-pipeline/*` listing found last. Kept through a failed listing."""
        self._failing: dict[str, SourceFailure] = {}
        """Source -> its lasting failure, logged once (again when its error changes)."""
        self._account_of: Callable[[str], str] = account_of or _default_account
        self._calls: dict[tuple[str, str, str, str], prometheus_client.Counter] = {}
        self.passes = 0
        self._one_pass_at_a_time = anyio.Lock()
        self._resting: anyio.CancelScope | None = None
        self._sources_changed = False
        self._relisted: dict[str, int] = {}
        """Pipeline ARN -> listings in a row that did not yet show its last run."""
        self._count_calls_of(sources)

    def failing(self) -> list[SourceFailure]:
        """The sources whose last listing failed, by ARN (for /status)."""
        return [self._failing[source] for source in sorted(self._failing)]

    async def run(self) -> None:
        """List every source now and then every interval, until cancelled."""
        while True:
            started = self._clock.monotonic()
            self._sources_changed = False
            await self.discover_once()
            if self._sources_changed:
                continue  # a reload during the pass: list the new sources now
            # Sleep the rest of the interval, so a slow pass does not make it drift;
            # new sources (a reload) end the sleep at once.
            with anyio.CancelScope() as self._resting:
                await self._clock.sleep(
                    max(0.0, self._interval - (self._clock.monotonic() - started))
                )
            self._resting = None

    def set_sources(self, sources: Sources) -> None:
        """Follow these sources from now on, listing them at once."""
        if sources == self.sources:
            return
        self.sources = sources
        self._count_calls_of(sources)
        self.relist()

    def relist(self) -> None:
        """List every source now rather than at the end of the interval (also on
        SIGHUP: a source that failed on credentials or access may list now)."""
        self._sources_changed = True
        if self._resting is not None:
            self._resting.cancel()

    async def discover_once(self) -> None:
        """One pass over every source; a failing source is logged and skipped."""
        async with self._one_pass_at_a_time:
            await self._pass()

    async def _pass(self) -> None:
        sources = self.sources
        followed = await self._store.followed_sources()
        now = self._clock.now().timestamp()
        for source in (*sources.versions, *sources.pipelines):
            if source not in followed:
                # From now on, a build that ends is news; one that had already ended
                # before (found on this first listing, or later) is history.
                await self._store.mark_followed(source, now)
                followed[source] = now
        gate = anyio.CapacityLimiter(self._concurrency)
        horizon = now - self._history_horizon
        async with anyio.create_task_group() as group:
            for version in sources.versions:
                since = _moment(max(followed[version], horizon))
                group.start_soon(self._follow, version, self._version, since, gate)
            for pipeline in sources.pipelines:
                since = _moment(max(followed[pipeline], horizon))
                group.start_soon(self._follow, pipeline, self._pipelines, since, gate)
        self._tell(sources)
        self.passes += 1

    def _tell(self, sources: Sources) -> None:
        """After a pass: forget what is no longer followed (a reload removed it, a
        wildcard's listing no longer shows it), and set the gauges."""
        self._members = {s: m for s, m in self._members.items() if s in sources.pipelines}
        pipelines = frozenset().union(*self._members.values())
        self._status = {arn: s for arn, s in self._status.items() if arn in pipelines}
        followed = {*sources.versions, *sources.pipelines, *pipelines}
        self._failing = {s: f for s, f in self._failing.items() if s in followed}
        if self._metrics is None:
            return
        self._metrics.set_pipelines(self._status.values())
        # Every (account, region) followed now, at 0 when none of its sources fails;
        # one a reload stopped following leaves the gauge (`set_sources_failing`
        # clears it first), rather than stay at 0 for as long as the process runs.
        failing = Counter(self._key(source) for source in self._failing)
        self._metrics.set_sources_failing({self._key(s): failing[self._key(s)] for s in followed})

    def _key(self, arn: str) -> tuple[str, str]:
        """The (account, region) labels of calls and failures about `arn`."""
        return self._account_of(arn), region_of(arn)

    async def _follow(
        self,
        source: str,
        list_source: Callable[[str, datetime, anyio.CapacityLimiter], Awaitable[None]],
        since: datetime,
        gate: anyio.CapacityLimiter,
    ) -> None:
        """List one source; its failure is logged (once while it lasts), not raised."""
        try:
            await list_source(source, since, gate)
        except (ApiError, InvalidArn) as exc:
            self._failed(source, exc)
            return
        self._recovered(source)

    def _failed(self, source: str, exc: ApiError | InvalidArn) -> None:
        before = self._failing.get(source)
        failure = SourceFailure(source, exc, before.since if before else self._clock.now())
        if before is None or before.message != failure.message:
            log.warning(
                "discovery.failed",
                source=source,
                error=failure.message,
                code=getattr(exc, "code", ""),
            )
        self._failing[source] = failure
        # Only a failure that says the API is out of reach makes /readyz 503 (as a
        # poll's would). A source that is not found, or refused as invalid, is one
        # source, often a typo in the config: taking the whole daemon out of service
        # for it (a failing readiness probe, IbwatchNotReady paging) would stop it
        # watching everything else. It is named in /status, counted in
        # ibwatch_discovery_sources_failing, and IbwatchDiscoverySourceFailing fires.
        # Such an answer proves the API reached: said so, or a daemon whose only
        # source is a typo would stay unready with "no call has been made yet".
        if self._readiness is None or not isinstance(exc, ApiError):
            return  # an ARN refused before any call proves nothing either way
        if isinstance(exc, _NOT_REACHED):
            self._readiness.record(False, f"discovery: {type(exc).__name__}: {exc.code}")
        else:
            self._readiness.record(True, "")

    def _recovered(self, source: str) -> None:
        if self._failing.pop(source, None) is not None:
            log.info("discovery.recovered", source=source)
        if self._readiness is not None:
            self._readiness.record(True, "")

    async def _version(self, source: str, since: datetime, gate: anyio.CapacityLimiter) -> None:
        edge = _AccountsSeen(self._edge_for(source))
        async with gate:
            builds = await builds_of_version(edge, self._engine.call_for(source), source)
        wanted = Arn.parse(source)
        if not builds and edge.accounts and wanted.account not in edge.accounts:
            # Listed in the caller's account (a wildcard by image name): builds of
            # other accounts only say the credentials read one of those.
            raise self._other_account(source, wanted.account, edge.accounts, "images")
        await self._add(source, builds, since)

    async def _pipelines(self, source: str, since: datetime, gate: anyio.CapacityLimiter) -> None:
        # A pipeline's look and its listing share one hold of the gate: taken twice,
        # the listing would queue behind every other pipeline's look, and a new
        # build would be found near the end of each pass (the discovery benchmark).
        wanted = PipelineArn.parse(source)
        # Every call about the source, or a pipeline of it, is in its account and region.
        edge = self._edge_for(source)
        if not wanted.is_wildcard:
            async with gate:
                pipeline = await self._engine.call(lambda: edge.get_pipeline(source), arn=source)
                self._members[source] = frozenset({source})
                await self._pipeline(edge, pipeline, since)
            return
        async with gate:
            found = await all_pages(
                self._engine.call_for(source),
                functools.partial(_list_pipelines, edge, wanted.region, wanted.account),
                f"pipelines of {source}",
            )
        listed = {account_field(pipeline.arn) for pipeline in found}
        found = [pipeline for pipeline in found if _same_account(pipeline.arn, wanted)]
        if not found and listed - {wanted.account}:
            raise self._other_account(source, wanted.account, listed, "pipelines")
        self._members[source] = frozenset(pipeline.arn for pipeline in found)
        for pipeline in found:
            # One pipeline failing (say, denied by a resource-scoped policy) must not
            # keep the others of the wildcard from being followed.
            try:
                async with gate:
                    await self._pipeline(edge, pipeline, since)
            except ApiError as exc:
                self._failed(pipeline.arn, exc)
                continue
            self._recovered(pipeline.arn)

    def _other_account(
        self, source: str, account: str, listed: set[str], what: str
    ) -> OtherAccount:
        """The failure of a source of `account` whose listing showed `what` (pipelines,
        images) of the `listed` accounts only."""
        read = f"account{'s' if len(listed) > 1 else ''} {', '.join(sorted(listed))}"
        if self._account_of(source) == DEFAULT_ACCOUNT:
            fix = f'add [aws.accounts."{account}"] with a role or profile that reads it'
        else:
            fix = f'the role or profile of [aws.accounts."{account}"] reads another account'
        return OtherAccount(
            f"listed with the credentials of {read}, which see none of account "
            f"{account}'s {what}: {fix}",
            code="OtherAccount",
            arn=source,
        )

    async def _pipeline(self, edge: DiscoveryEdge, pipeline: PipelineInfo, since: datetime) -> None:
        """List the pipeline's builds if it ran since they were last listed; the
        caller holds the gate."""
        self._note_status(pipeline)
        last_run = pipeline.date_last_run
        if last_run is None or self._last_run.get(pipeline.arn) == last_run:
            return  # never ran, or no run since its builds were listed
        builds = await all_pages(
            self._engine.call_for(pipeline.arn),
            functools.partial(_list_pipeline_images, edge, pipeline.arn),
            f"builds of {pipeline.arn}",
        )
        await self._add(pipeline.arn, builds, since)
        if self._lists_its_last_run(pipeline, builds):
            self._last_run[pipeline.arn] = last_run

    def _lists_its_last_run(self, pipeline: PipelineInfo, builds: Sequence[ImageSnapshot]) -> bool:
        """Whether the listing already holds the run `dateLastRun` speaks of. Our
        reading (AWS documents no ordering between the two): the list may lag the
        pipeline for a moment, so it is listed again next pass, a few times at most,
        rather than that run being missed until the pipeline runs again."""
        last_run = _date(pipeline.date_last_run)
        newest = max((_aware(b.created) for b in builds if b.created), default=None)
        if last_run is None or (newest is not None and newest >= last_run - _RUN_SKEW):
            self._relisted.pop(pipeline.arn, None)
            return True
        tries = self._relisted[pipeline.arn] = self._relisted.get(pipeline.arn, 0) + 1
        return tries >= _RELIST_TRIES

    async def _add(self, source: str, builds: Sequence[ImageSnapshot], since: datetime) -> None:
        added: Discovered = await self._engine.add_discovered(source, builds, history_before=since)
        if added.total:
            # Told apart: a first listing can find dozens of ended builds, recorded
            # silently (history), beside the one build in progress it announces.
            log.info(
                "discovery.found",
                source=source,
                builds=added.total,
                announced=len(added.announced),
                history=len(added.history),
                resumed=len(added.resumed),
            )

    def _note_status(self, pipeline: PipelineInfo) -> None:
        """Log a pipeline turning DISABLED once, and count it: Image Builder disables
        a pipeline after consecutive scheduled failures, and then nothing builds.

        What it remembers of statuses is this process's (this leader term's): a
        pipeline DISABLED when first read may have been so for long, and is said to
        be found so (`found_disabled`), not to have just turned; the counter counts it
        ("or DISABLED when first seen"), and `ibwatch_pipelines_followed` says how
        many are disabled now, whatever this process saw happen."""
        before = self._status.get(pipeline.arn)
        self._status[pipeline.arn] = pipeline.status
        if pipeline.status == DISABLED and before != DISABLED:
            found = before is None
            log.warning(
                "pipeline.disabled",
                pipeline=pipeline.arn,
                name=pipeline.name,
                last_run_status=pipeline.last_run_status,
                found_disabled=found,
                note=(
                    "found DISABLED at its first look since this daemon (or leader term) "
                    "started: its schedule starts no builds until it is enabled again"
                    if found
                    else "its schedule no longer starts builds until it is enabled again"
                ),
            )
            if self._metrics is not None:
                self._metrics.pipelines_disabled.inc()
        elif before == DISABLED and pipeline.status != DISABLED:
            log.info("pipeline.enabled", pipeline=pipeline.arn, name=pipeline.name)

    def _count_calls_of(self, sources: Sources) -> None:
        """Make the call counters of `sources` at 0 (see `watcher.metrics`)."""
        for source in (*sources.versions, *sources.pipelines):
            for operation in _operations(source):
                for outcome in OUTCOMES:
                    self._counter(operation, outcome, *self._key(source))

    def _counter(
        self, operation: str, outcome: str, account: str, region: str
    ) -> prometheus_client.Counter | None:
        if self._metrics is None:
            return None
        key = (operation, outcome, account, region)
        found = self._calls.get(key)
        if found is None:
            found = self._calls[key] = self._metrics.discovery_calls.labels(*key)
        return found

    def _edge_for(self, source: str) -> DiscoveryEdge:
        """The edge, its calls about `source` counted under its account and region."""
        if self._metrics is None:
            return self._edge
        return _CountedEdge(self._edge, functools.partial(self._count, *self._key(source)))

    async def _count(
        self, account: str, region: str, operation: str, call: Callable[[], Awaitable[T]]
    ) -> T:
        try:
            result = await call()
        except ApiError as exc:
            self._bump(operation, call_outcome(exc), account, region)
            raise
        self._bump(operation, "ok", account, region)
        return result

    def _bump(self, operation: str, outcome: str, account: str, region: str) -> None:
        counter = self._counter(operation, outcome, account, region)
        if counter is not None:
            counter.inc()


class _Count(Protocol):
    def __call__(self, operation: str, call: Callable[[], Awaitable[T]]) -> Awaitable[T]: ...


class _CountedEdge:
    """A discovery edge whose every call is counted by operation and outcome (one
    per attempt: the engine retries around it, as it does around GetImage)."""

    def __init__(self, edge: DiscoveryEdge, count: _Count) -> None:
        self._edge = edge
        self._count = count

    async def get_pipeline(self, pipeline_arn: str) -> PipelineInfo:
        return await self._count("GetImagePipeline", lambda: self._edge.get_pipeline(pipeline_arn))

    async def list_pipelines(
        self, region: str, *, next_token: str | None = None, account: str | None = None
    ) -> Page[PipelineInfo]:
        return await self._count(
            "ListImagePipelines",
            lambda: self._edge.list_pipelines(region, next_token=next_token, account=account),
        )

    async def list_pipeline_images(
        self, pipeline_arn: str, *, next_token: str | None = None
    ) -> Page[ImageSnapshot]:
        return await self._count(
            "ListImagePipelineImages",
            lambda: self._edge.list_pipeline_images(pipeline_arn, next_token=next_token),
        )

    async def list_build_versions(
        self,
        region: str,
        *,
        version_arn: str | None = None,
        name: str | None = None,
        next_token: str | None = None,
        account: str | None = None,
    ) -> Page[ImageSnapshot]:
        return await self._count(
            "ListImageBuildVersions",
            lambda: self._edge.list_build_versions(
                region, version_arn=version_arn, name=name, next_token=next_token, account=account
            ),
        )


class _AccountsSeen:
    """A build lister that notes the account of every build its listings return."""

    def __init__(self, edge: BuildLister) -> None:
        self._edge = edge
        self.accounts: set[str] = set()

    async def list_build_versions(
        self,
        region: str,
        *,
        version_arn: str | None = None,
        name: str | None = None,
        next_token: str | None = None,
        account: str | None = None,
    ) -> Page[ImageSnapshot]:
        page = await self._edge.list_build_versions(
            region, version_arn=version_arn, name=name, next_token=next_token, account=account
        )
        self.accounts |= {account_field(build.arn) for build in page.items}
        return page


def _list_pipelines(
    edge: DiscoveryEdge, region: str, account: str, token: str | None
) -> Awaitable[Page[PipelineInfo]]:
    return edge.list_pipelines(region, next_token=token, account=account)


def _list_pipeline_images(
    edge: DiscoveryEdge, pipeline_arn: str, token: str | None
) -> Awaitable[Page[ImageSnapshot]]:
    return edge.list_pipeline_images(pipeline_arn, next_token=token)


def _default_account(_arn: str) -> str:
    return DEFAULT_ACCOUNT


def _same_account(arn: str, wanted: PipelineArn) -> bool:
    try:
        found = PipelineArn.parse(arn)
    except InvalidArn:
        return False
    return (found.partition, found.region, found.account) == (
        wanted.partition,
        wanted.region,
        wanted.account,
    )


def _moment(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return _aware(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None
