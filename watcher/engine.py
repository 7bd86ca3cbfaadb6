"""The watch engine: a scheduler that keeps each watched ARN's next due time, a
pool of workers fed through one bounded memory stream, the tracker, the store and
the sinks, all owned by one anyio task group.

The daemon (`run`), the one-shot `wait-until-available` and `demo` all run this
same loop; the one-shot modes just stop once every watched build has ended.
Time comes only from the injected clock.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

import anyio
import structlog
from anyio import CancelScope
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from watcher.aws import ImageSource
from watcher.build_progress import BuildProgress, ProgressListener, ProgressLookups
from watcher.clock import Clock
from watcher.credentials import DEFAULT_ACCOUNT
from watcher.diagnostics import Call, WorkflowEdge, gather
from watcher.errors import (
    AccessDenied,
    ApiError,
    BadCredentials,
    FinalError,
    NotFound,
    RetryableError,
)
from watcher.model import Arn, ImageSnapshot, ImageStatus, Transition
from watcher.ratelimit import CubicLimiter, LimiterPool
from watcher.retry import RetryPolicy, call_with_retry
from watcher.sinks.base import Sink
from watcher.store.base import Store
from watcher.tracker import Tracked, observe

if TYPE_CHECKING:  # the one-shot wait needs no Prometheus client at start-up
    from watcher.metrics import Metrics

log = structlog.get_logger("ibwatch")

T = TypeVar("T")


class Outbox(Protocol):
    def routes_for(self, events: Sequence[Transition]) -> Mapping[str, Sequence[str]]:
        """Event id -> the names of the sinks that want it."""
        ...

    def wake(self) -> None:
        """Rows were committed; deliver them."""
        ...


@dataclass(frozen=True)
class Schedule:
    """How often to poll, by status."""

    interval_for: Callable[[ImageStatus], float]
    jitter: float = 0.1
    """Each interval is stretched or shrunk by up to this fraction, so thousands of
    ARNs do not poll in lockstep."""
    failed_recheck_interval: float = 600.0
    failed_recheck_window: float = 6 * 3600.0
    """A FAILED build is re-checked this long, since RetryImage can revive it."""
    not_found_grace: float = 120.0
    """A build that answers NotFound this soon after it was first polled is
    retried; later, NotFound parks it. Our reading: the model says
    StartImagePipelineExecution returns once the image resource exists, but AWS
    APIs are eventually consistent in general, so a new ARN may 404 for a moment."""


@dataclass(frozen=True)
class Recovery:
    """The daemon's answer to final errors that the world outside can heal: a
    credentials file mounted late, a role's policy fixed. An ARN parked on one of
    `kinds` is polled again on a slow backoff (the status interval, doubling on each
    failure, up to `cap` seconds) and at once on `retry_parked()`, instead of never
    again. Network failures never park (they are retryable: polled again at the
    status interval). A one-shot run has no Recovery: there, bad credentials must
    end the run quickly (exit 4), not wait for its timeout."""

    cap: float = 300.0
    kinds: tuple[type[FinalError], ...] = (AccessDenied, BadCredentials)
    """NotFound is not among them: a build ARN that still answers 404 past its grace
    does not exist, and no retry will make it."""


PROGRESS_DEADLINE = 5.0
"""Seconds a transition's event waits for its build's running step to be looked up
before it is committed without one. While calls queue for the limiter it does not
wait at all: the event goes out first, the step comes at a later poll."""


PollOutcome = Literal["committed", "failed", "unwatched"]


Resolver = Callable[[str], Awaitable[str | None]]
"""A version ARN -> the ARN of its newest build, or None while it has none."""


@dataclass
class Watch:
    """What the engine knows of one watched ARN.

    Three kinds share it: a build ARN from the config (`arn` = `watched` =
    `build_arn`); a build found by discovery (`arn` = `build_arn`, `watched` the
    version or pipeline ARN it was found through); and, in one-shot runs, a
    version ARN (`arn` = `watched`) whose newest build is looked up first
    (`build_arn` None until then).
    """

    arn: str
    """The key: what the store remembers the watch under."""
    watched: str
    """What its events name as `watched`."""
    build_arn: str | None
    """The build GetImage is asked about; None while a version ARN is unresolved."""
    tracked: Tracked | None = None
    error: FinalError | None = None
    added_at: float = 0.0
    """Clock seconds (monotonic) when the engine began polling `build_arn`: the
    NotFound grace counts from here."""
    discovered: bool = False
    """Found by discovery, not configured: a config reload does not drop it."""
    waiting: str | None = None
    """Why an unresolved version ARN is not being polled yet ("no build of ... yet")."""
    last_error: ApiError | None = None
    """The last failure retrying may still heal, until a call succeeds again: what a
    timeout reports as its cause."""
    paused_polls: int = 0
    """Polls in a row that failed on an error `Recovery` heals: the backoff's exponent."""
    progress: BuildProgress | None = None
    """The running workflow step, as last looked up (`watcher.build_progress`)."""
    due: float = math.inf
    """When `entry` is due (clock seconds)."""
    _lock: anyio.Lock | None = None
    committed_fetch: int = 0
    """The number (`Engine.fetch_number`) of the GetImage whose answer was last
    committed: a push event received at mark N is answered by any fetch numbered
    above N, since that request went out after the event arrived."""
    entry: int | None = None
    """The schedule entry that is this watch's next poll; None while it is being
    polled or has left the schedule. Any other entry for it is stale and skipped, so
    rescheduling (SIGHUP's retry now) never makes a watch poll twice."""

    def failed_attempt(self, error: ApiError) -> None:
        self.last_error = error

    @property
    def lock(self) -> anyio.Lock:
        """Held while the build is polled; made on first use (in the event loop)."""
        if self._lock is None:
            self._lock = anyio.Lock()
        return self._lock

    @property
    def ended(self) -> bool:
        """The build reached a terminal status, or the ARN was parked on a final error."""
        return self.error is not None or (
            self.tracked is not None and self.tracked.snapshot.status.terminal
        )


@dataclass
class RunResult:
    watches: dict[str, Watch]
    timed_out: bool = False
    interrupted: int | None = None
    """The signal (SIGINT, SIGTERM) that stopped the run before it was done."""
    cancelled: set[str] = field(default_factory=set)
    """ARNs whose builds the caller asked to cancel because time ran out (`ibwatch
    start --cancel-on-timeout`; CANCELLED only once seen so): they count as timed
    out, not as failed."""


@dataclass
class Discovered:
    """What `Engine.add_discovered` did with the builds a source listed, by ARN."""

    announced: list[str] = field(default_factory=list)
    """New builds, polled at once (before the polls already due): their first
    sighting is an event."""
    history: list[str] = field(default_factory=list)
    """New builds that had ended before their source was followed: recorded silently."""
    resumed: list[str] = field(default_factory=list)
    """Builds the store remembers: watched again from where they were."""

    @property
    def total(self) -> int:
        return len(self.announced) + len(self.history) + len(self.resumed)


class Engine:
    def __init__(
        self,
        *,
        source: ImageSource,
        store: Store,
        clock: Clock,
        limiter: CubicLimiter | LimiterPool,
        schedule: Schedule,
        retry: RetryPolicy,
        concurrency: int = 16,
        rng: random.Random | None = None,
        outbox: Outbox | None = None,
        listeners: Sequence[Sink] = (),
        metrics: Metrics | None = None,
        resolver: Resolver | None = None,
        recovery: Recovery | None = None,
        workflows: WorkflowEdge | None = None,
        progress_share: float = 0.0,
        progress_head_start: int = 0,
        log_lines: int = 0,
        lease: Callable[[], None] | None = None,
    ) -> None:
        """`outbox` routes each committed event to the sinks that want it (durable
        delivery rows in the same transaction); `listeners` are in-process observers
        told right after the commit, such as the progress lines of a one-shot wait;
        `resolver` finds the newest build of a version ARN (one-shot runs only: the
        daemon follows version ARNs through discovery instead); `recovery` (the daemon
        only) polls ARNs parked on credentials or access again later; `workflows` reads
        a failed build's workflow steps for its FAILED event's diagnostics, and the
        running step of a build in progress within `progress_share` of the limiter's
        rate (0: never; `progress_head_start` lets the first polls of that many builds
        look theirs up, as a one-shot wait wants); `log_lines` of a failed build's log
        join its diagnostics. `limiter`: a pool paces each (account, region) on its
        own; a single limiter paces every call."""
        self._source = source
        self._store = store
        self._listeners: list[Sink] = list(listeners)
        self._outbox = outbox
        self._metrics = metrics
        self.running = False
        self._clock = clock
        self._limiters = (
            limiter if isinstance(limiter, LimiterPool) else LimiterPool.sharing(limiter)
        )
        self._schedule = schedule
        self._retry = retry
        self._concurrency = max(1, concurrency)
        self._random = rng or random.Random()
        self.watches: dict[str, Watch] = {}
        self._due: list[tuple[float, int, str]] = []
        self._order = itertools.count()
        self._wake: CancelScope | None = None
        self._sleeping_until = math.inf
        self._all_ended = anyio.Event()
        self._stop_when_ended = False
        self._timed_out = False
        self._interrupted: int | None = None
        self._running_scope: CancelScope | None = None
        self._resolver = resolver
        self._remembered: dict[str, Tracked] | None = None
        self._recovery = recovery
        # What reads a failed build's workflow steps: given, or the source itself when
        # it can (AwsImageSource); a scripted source cannot, and its FAILED events
        # carry no diagnostics. A wrapped source (the daemon's MeteredSource) is given.
        self._workflows = workflows or (source if isinstance(source, WorkflowEdge) else None)
        self._log_lines = log_lines
        self._lease = lease
        """Raises while this replica may not act (watcher.leadership): asked before
        each attempt of a `call`, such as discovery's lists and a push event's poll."""
        workflows = self._workflows
        # One budget per limiter: a share of its own (account, region)'s rate, and a
        # pause after a refusal that holds in that account only.
        self._progress_of: Callable[[CubicLimiter], ProgressLookups] | None = (
            (
                lambda limiter: ProgressLookups(
                    workflows,
                    limiter=limiter,
                    clock=clock,
                    share=progress_share,
                    head_start=progress_head_start,
                    counted=(
                        (lambda outcome: metrics.progress_lookups.labels(outcome).inc())
                        if metrics is not None
                        else None
                    ),
                )
            )
            if workflows is not None and progress_share > 0
            else None
        )
        self._progress: dict[CubicLimiter, ProgressLookups] = {}
        self._progress_listeners = [x for x in listeners if isinstance(x, ProgressListener)]
        self._safety: float | None = None
        self._safety_regions: set[str] = set()
        self._fetches = 0
        self._started: anyio.Event | None = None

    async def watch_arns(self, arns: Sequence[str]) -> tuple[list[str], list[str]]:
        """Watch exactly these configured `arns` from now on: new ones are polled at
        once (with what the store remembers of them), dropped ones leave the
        schedule. Builds found by discovery are not touched. Returns (added, removed)."""
        remembered = await self._store.load_all()
        wanted = set(arns)
        added = [arn for arn in arns if arn not in self.watches]
        removed = [arn for arn, w in self.watches.items() if not w.discovered and arn not in wanted]
        now = self._clock.monotonic()
        # Everything that can fail happens before anything changes: a reload that
        # raises here leaves the running watch list as it was.
        new: list[Watch] = []
        for arn in added:
            is_build = Arn.parse(arn).is_build
            if not is_build and self._resolver is None:
                raise ValueError(f"{arn} is a version ARN: only discovery follows those here")
            tracked = remembered.get(arn)
            new.append(
                Watch(
                    arn=arn,
                    watched=(tracked.watched if tracked and tracked.watched else arn),
                    build_arn=arn if is_build else (tracked.snapshot.arn if tracked else None),
                    tracked=tracked,
                    added_at=now,
                )
            )
        for arn in removed:
            del self.watches[arn]  # its schedule entry is skipped when it comes due
        for watch in new:
            self.watches[watch.arn] = watch
            self._push(watch.arn, now)
        return added, removed

    async def add_discovered(
        self,
        source: str,
        builds: Sequence[ImageSnapshot],
        *,
        history_before: datetime | None = None,
    ) -> Discovered:
        """Watch the builds discovery listed through `source` that are not watched
        yet; returns the ARNs of those it added, by what became of them.

        A build the store remembers carries on from there. A build first seen
        already ended and created no later than `history_before` (when the source
        began to be followed) is history: recorded without an event, so a first
        start does not flood chat with old AVAILABLEs. Every other new build is
        polled at once and its first sighting announced.
        """
        if self._remembered is None:
            self._remembered = await self._store.load_all()
        now = self._clock.monotonic()
        added = Discovered()
        for build in builds:
            # Checked build by build: two sources can list the same build, and one
            # listing can repeat a build when pages shift under it.
            if build.arn in self.watches:
                continue
            watch, remembered = self._discovered(build.arn, source, now)
            if remembered is not None:
                added.resumed.append(build.arn)
            elif not _is_history(build, history_before):
                added.announced.append(build.arn)
            else:
                added.history.append(build.arn)
                watch.tracked = Tracked(
                    snapshot=build, status_since=build.observed_at, sequence=1, watched=source
                )
                await self._store.commit(
                    build.arn, watch.tracked, [], None, now=self._clock.now().timestamp()
                )
                continue  # history is not re-checked, not even a FAILED build
            if watch.tracked is None or not watch.tracked.snapshot.status.terminal:
                # A new build is news (its first sighting is an event): ahead of the
                # polls already overdue, which only check builds known before.
                self._push(build.arn, now, ahead=watch.tracked is None)
                continue
            delay = self._next_poll(watch)  # a FAILED build is re-checked for a while
            if delay is not None:
                self._push(build.arn, now + delay)
        self._check_all_ended()
        return added

    async def poll_now(self, arn: str, *, received_at: int | None = None) -> PollOutcome:
        """Poll watched build `arn` at once (a push event says it changed): "committed"
        once what the poll saw is committed, "failed" when GetImage failed (handled as
        any poll's failure), "unwatched" when `arn` is not a watched build. Its next
        scheduled poll comes an interval after this one.

        `received_at`: the `fetch_mark` when the event arrived. A poll of the build
        whose GetImage went out after that and is committed already answers the event,
        so a duplicate (or a second event in one batch) costs no second call."""
        watch = self.watches.get(arn)
        if watch is None or watch.build_arn is None:
            return "unwatched"
        polled = await self._poll(watch, out_of_turn=True, answered_after=received_at)
        return "committed" if polled else "failed"

    def fetch_mark(self) -> int:
        """How many GetImage fetches have started so far: a fetch numbered above the
        mark went out after it was taken."""
        return self._fetches

    def fetch_number(self) -> int:
        """Number a GetImage about to go out (the engine's own, or a push consumer's
        for a build it adopts)."""
        self._fetches += 1
        return self._fetches

    def is_stopped(self, arn: str) -> bool:
        """Whether polling `arn` stopped on an error, for good or paused until it heals."""
        watch = self.watches.get(arn)
        return watch is not None and watch.error is not None

    async def wait_started(self) -> None:
        """Return once `run` has loaded the configured watches."""
        await self._started_event().wait()

    def _started_event(self) -> anyio.Event:
        if self._started is None:  # made in the event loop, on first use
            self._started = anyio.Event()
        return self._started

    async def adopt(self, source: str, snapshot: ImageSnapshot, fetch: int = 0) -> None:
        """Watch the build of `snapshot`, found through `source` (a push event for a
        build no one listed yet), with `snapshot` as its first poll (`fetch`: the
        `fetch_number` of the GetImage that read it): committed before this returns. A
        build the store remembers carries on from there."""
        if self._remembered is None:
            self._remembered = await self._store.load_all()
        # Checked after the load: two events of one new build may both have waited there.
        found = self.watches.get(snapshot.arn)
        if found is not None:  # watched meanwhile (another event, discovery)
            async with found.lock:
                # This answer is news unless one sent after it is committed already.
                if fetch > found.committed_fetch:
                    await self._process(found, snapshot.arn, snapshot)
                    found.committed_fetch = fetch
            return
        watch, _ = self._discovered(snapshot.arn, source, self._clock.monotonic())
        async with watch.lock:
            await self._process(watch, snapshot.arn, snapshot)
            watch.committed_fetch = fetch

    def _discovered(self, build_arn: str, source: str, now: float) -> tuple[Watch, Tracked | None]:
        """Watch a build a source found (discovery, a push event), carrying on from what
        the store remembers of it; the watch and that remembered state."""
        assert self._remembered is not None
        remembered = self._remembered.pop(build_arn, None)
        watch = Watch(
            arn=build_arn,
            watched=remembered.watched if remembered and remembered.watched else source,
            build_arn=build_arn,
            tracked=remembered,
            added_at=now,
            discovered=True,
        )
        self.watches[build_arn] = watch
        return watch, remembered

    def set_safety_interval(self, seconds: float | None) -> None:
        """While push events arrive (`seconds` set), builds in progress in the regions
        events come from (`events_from`) are polled only this often, as a safety net;
        None: back to the status intervals, and every build due later than its status
        interval from now is polled then."""
        self._safety = seconds
        if seconds is not None:
            return
        now = self._clock.monotonic()
        for watch in list(self.watches.values()):
            if watch.entry is None or watch.tracked is None or watch.ended:
                continue
            soon = now + self._jittered(self._schedule.interval_for(watch.tracked.snapshot.status))
            if watch.due > soon:
                self._push(watch.arn, soon)

    def events_from(self, region: str) -> None:
        """Push events reach us from `region`: its builds may be polled at the safety
        interval. Image Builder sends its events to the region's own default bus, so a
        queue wired in one region hears nothing of builds in another. The first time,
        the region's builds due sooner are moved out to the safety interval: else for
        a whole status interval every build costs its scheduled polls and its events'.
        Moved to a moment drawn evenly within it, not to its end: a fleet moved at
        once would otherwise come due together, a whole interval's polls in a tenth of
        it, and the net would lag behind its own backlog."""
        if region in self._safety_regions:
            return
        self._safety_regions.add(region)
        if self._safety is None:
            return
        now = self._clock.monotonic()
        for watch in list(self.watches.values()):
            if watch.entry is None or watch.tracked is None or watch.ended:
                continue
            if Arn.parse(watch.arn).region != region:
                continue
            delay = self._next_poll(watch)
            if delay is None:
                continue
            moved = now + delay * self._random.random()
            if watch.due < moved:  # never sooner than it was due
                self._push(watch.arn, moved)

    async def call(
        self, fn: Callable[[], Awaitable[T]], *, urgent: bool = False, arn: str | None = None
    ) -> T:
        """Run one API call as polls run: paced by the limiter of `arn`'s account and
        region (the ARN the call is about), retried; `urgent` (a push event's): before
        the calls waiting their turn. Without `arn`, paced by a limiter of its own
        (with a single limiter, that one)."""
        limiter = (
            self._limiters.for_arn(arn)
            if arn is not None
            else self._limiters.get(DEFAULT_ACCOUNT, "")
        )
        lease = self._lease
        if lease is not None:
            unleased = fn

            async def leased() -> T:
                lease()  # before each attempt: a retry's backoff may outlast the lease
                return await unleased()

            fn = leased
        return await call_with_retry(
            fn,
            limiter=limiter,
            clock=self._clock,
            policy=self._retry,
            rng=self._random,
            urgent=urgent,
        )

    def call_for(self, arn: str) -> Call:
        """`call`, paced by the limiter of `arn`'s account and region: what to hand to
        the listing and diagnostics helpers, which take a plain call."""

        async def call(fn: Callable[[], Awaitable[T]]) -> T:
            return await self.call(fn, arn=arn)

        return call

    def finish_when_ended(self) -> None:
        """From now on, stop once every watched build has ended (the demo, which
        first lets discovery find everything its scenario will build)."""
        self._stop_when_ended = True
        self._check_all_ended()

    def retry_parked(self) -> list[str]:
        """Poll now every ARN parked on an error `Recovery` heals (SIGHUP: the
        operator says the credentials or the policy were fixed). Returns their ARNs."""
        if self._recovery is None:
            return []
        now = self._clock.monotonic()
        retried = [
            watch.arn
            for watch in self.watches.values()
            # entry None: being polled right now, or left the schedule for good.
            if watch.entry is not None and self._recoverable(watch.error)
        ]
        for arn in retried:
            self._push(arn, now)
        return retried

    def paused(self) -> dict[str, int]:
        """What keeps recoverable ARNs parked: "AccessDenied (ForbiddenException)" ->
        how many ARNs it holds. Empty when nothing waits to recover."""
        causes: dict[str, int] = {}
        for watch in self.watches.values():
            if self._recoverable(watch.error):
                assert watch.error is not None
                cause = f"{type(watch.error).__name__} ({watch.error.code})"
                causes[cause] = causes.get(cause, 0) + 1
        return causes

    def _recoverable(self, error: FinalError | None) -> bool:
        return (
            error is not None
            and self._recovery is not None
            and isinstance(error, self._recovery.kinds)
        )

    @property
    def limiter(self) -> LimiterPool:
        """The limiters, one per (account, region) (a single shared one if so built)."""
        return self._limiters

    def add_listener(self, listener: Sink) -> None:
        """Tell `listener` of every event after its commit, and of every change of a
        build's running step too if it is a `ProgressListener`."""
        self._listeners.append(listener)
        if isinstance(listener, ProgressListener):
            self._progress_listeners.append(listener)

    @property
    def progress_lookups(self) -> Mapping[CubicLimiter, ProgressLookups] | None:
        """The running-step look-ups of each limiter used so far; None when off."""
        return None if self._progress_of is None else self._progress

    def _progress_for(self, build_arn: str) -> ProgressLookups | None:
        if self._progress_of is None:
            return None
        limiter = self._limiters.for_arn(build_arn)
        found = self._progress.get(limiter)
        if found is None:
            found = self._progress[limiter] = self._progress_of(limiter)
        return found

    async def run(
        self, arns: Sequence[str], *, stop_when_ended: bool = False, time_limit: float | None = None
    ) -> RunResult:
        """Watch `arns` until cancelled; with `stop_when_ended`, until every build has
        ended; with `time_limit` (clock seconds), until then at the latest."""
        await self.watch_arns(arns)
        self._stop_when_ended = stop_when_ended
        self.running = True
        self._started_event().set()
        try:
            await self._run_all(time_limit)
        finally:
            self.running = False
        return RunResult(
            watches=self.watches,
            timed_out=self._timed_out and not all(w.ended for w in self.watches.values()),
            interrupted=self._interrupted,
        )

    def interrupt(self, signum: int) -> None:
        """Stop the run now, as a signal asks: `run` returns what was seen so far."""
        self._interrupted = signum
        if self._running_scope is not None:
            self._running_scope.cancel()

    async def _run_all(self, time_limit: float | None) -> None:
        send, receive = anyio.create_memory_object_stream[str](max_buffer_size=self._concurrency)
        with self._clock.move_on_after(math.inf if time_limit is None else time_limit) as limit:
            async with anyio.create_task_group() as group:
                for _ in range(self._concurrency):
                    group.start_soon(self._work, receive.clone())
                receive.close()
                group.start_soon(self._dispatch_due, send)
                group.start_soon(self._cancel_when_ended, group.cancel_scope)
                self._running_scope = group.cancel_scope
                if self._interrupted is not None:
                    group.cancel_scope.cancel()
        self._timed_out = limit.cancelled_caught

    # -- scheduling --------------------------------------------------------

    def _push(self, arn: str, due: float, *, ahead: bool = False) -> None:
        """Make `due` the next poll of `arn`, in place of any other still pending.
        `ahead` (due now): handed to the workers before every poll already overdue."""
        order = next(self._order)
        key = -math.inf if ahead else due
        heapq.heappush(self._due, (key, order, arn))
        watch = self.watches.get(arn)
        if watch is not None:
            watch.entry, watch.due = order, due
        if key < self._sleeping_until and self._wake is not None:
            self._wake.cancel()

    async def _dispatch_due(self, send: MemoryObjectSendStream[str]) -> None:
        """Hand each ARN to the workers when it is due; sleep until the next one."""
        async with send:
            while True:
                now = self._clock.monotonic()
                if self._due and self._due[0][0] <= now:
                    _, order, arn = heapq.heappop(self._due)
                    watch = self.watches.get(arn)
                    # Else it was dropped by a reload, or a later push replaced it.
                    if watch is not None and watch.entry == order:
                        watch.entry = None
                        try:
                            send.send_nowait(arn)
                        except anyio.WouldBlock:
                            await send.send(arn)  # waits while every worker is busy
                    continue
                self._sleeping_until = self._due[0][0] if self._due else math.inf
                with anyio.CancelScope() as self._wake:
                    if self._due:
                        await self._clock.sleep(self._sleeping_until - now)
                    else:
                        await anyio.sleep_forever()
                self._wake = None
                self._sleeping_until = math.inf

    def _next_poll(self, watch: Watch) -> float | None:
        """Seconds until `watch` is polled again; None when it leaves the schedule."""
        assert watch.tracked is not None
        status = watch.tracked.snapshot.status
        if status.terminal:
            if status is not ImageStatus.FAILED:
                return None
            failed_for = (
                watch.tracked.snapshot.observed_at - watch.tracked.status_since
            ).total_seconds()
            if failed_for >= self._schedule.failed_recheck_window:
                return None
            return self._jittered(self._schedule.failed_recheck_interval)
        interval = self._schedule.interval_for(status)
        # Events say when to look; this is the net, never slower than asked for (a
        # status interval that is longer still stands) and never later than
        # `safety_interval`: its jitter only shortens it.
        safety = self._safety
        if (
            safety is not None
            and safety > interval
            and Arn.parse(watch.arn).region in self._safety_regions
        ):
            return safety * self._random.uniform(1 - self._schedule.jitter, 1)
        return self._jittered(interval)

    def _jittered(self, interval: float) -> float:
        spread = self._schedule.jitter
        return interval * self._random.uniform(1 - spread, 1 + spread)

    # -- polling -------------------------------------------------------------

    async def _work(self, receive: MemoryObjectReceiveStream[str]) -> None:
        async with receive:
            while True:
                # Take a waiting ARN without a trip round the event loop; block only
                # when there is none (the overhead benchmark showed the trips).
                try:
                    arn = receive.receive_nowait()
                except anyio.WouldBlock:
                    try:
                        arn = await receive.receive()
                    except anyio.EndOfStream:
                        return
                except anyio.EndOfStream:
                    return
                watch = self.watches.get(arn)
                if watch is not None:
                    await self._poll(watch, from_schedule=True)

    async def _poll(
        self,
        watch: Watch,
        *,
        from_schedule: bool = False,
        out_of_turn: bool = False,
        answered_after: int | None = None,
    ) -> bool:
        """One poll; whether GetImage answered (and what it said is committed).
        `from_schedule`: taken from the schedule by a worker. `out_of_turn`: not the
        schedule's (a push event's); its pending entry is void, since this poll
        schedules the next one (or parks the watch). `answered_after`: none is needed
        if a fetch numbered above it is committed (`poll_now`)."""
        # One poll of a build at a time: a push event's poll (`poll_now`) and the
        # schedule's must not both commit what they saw of the same previous state.
        async with watch.lock:
            if from_schedule and watch.entry is not None:
                # Polled since the schedule handed it out (a push event's poll, which
                # set the next poll): polling again at once would only repeat it.
                return True
            if answered_after is not None and watch.committed_fetch > answered_after:
                return True  # its schedule stands: that poll set it
            if out_of_turn:
                watch.entry = None
            build_arn = watch.build_arn
            if build_arn is None:
                await self._resolve(watch)
                return False
            # A push event's poll goes before the scheduled ones waiting for the
            # limiter: the event says the build changed, they only check. So does a
            # discovered build's first sighting: when the limiter is the bottleneck,
            # it would otherwise wait behind every scheduled poll (bench section 6).
            urgent = out_of_turn or (watch.discovered and watch.tracked is None)
            fetched = await self._fetch(watch, build_arn, urgent=urgent)
            if fetched is None:
                return False
            fetch, snapshot = fetched
            await self._process(watch, build_arn, snapshot)
            watch.committed_fetch = fetch
            return True

    async def _fetch(
        self, watch: Watch, build_arn: str, *, urgent: bool = False
    ) -> tuple[int, ImageSnapshot] | None:
        """GetImage of `build_arn`, retried: the `fetch_number` of the attempt that
        answered, taken as it was sent, and the answer. None when it failed (the
        failure is handled here: retried later, paused, or the watch parked)."""
        sent = 0

        async def get() -> ImageSnapshot:
            # Numbered after the limiter's wait, as the request goes out: a poll that
            # waited its turn since before an event arrived still answers the event.
            nonlocal sent
            sent = self.fetch_number()
            return await self._source.get(build_arn)

        try:
            snapshot = await call_with_retry(
                get,
                limiter=self._limiters.for_arn(build_arn),
                clock=self._clock,
                policy=self._retry,
                on_failure=watch.failed_attempt,
                rng=self._random,
                urgent=urgent,
            )
        except FinalError as exc:
            if isinstance(exc, NotFound) and self._within_grace(watch):
                if watch.waiting is None:  # said once, not on every retry
                    log.warning(
                        "image.not_found_yet",
                        **_error_fields(watch, exc),
                        note="a new build can answer NotFound for a moment; retrying",
                    )
                watch.waiting = "not found yet: a new build can answer NotFound for a moment"
                watch.last_error = exc
                self._poll_again(watch)
                return None
            if self._recoverable(exc):
                self._pause(watch, exc)
                return None
            # Reported once; the ARN is parked and the others go on. No longer waiting
            # (a 404 retried within its grace said so): the result and /status say why.
            watch.error, watch.waiting = exc, None
            log.error("image.watch_stopped", **_error_fields(watch, exc))
            self._check_all_ended()
            return None
        except RetryableError as exc:
            log.warning(
                "image.poll_failed", **_error_fields(watch, exc), attempts=self._retry.attempts
            )
            watch.last_error = exc
            self._poll_again(watch)
            return None
        return sent, snapshot

    async def _process(self, watch: Watch, build_arn: str, snapshot: ImageSnapshot) -> None:
        """What one answer of GetImage means: events, committed with the new state,
        then the next poll scheduled."""
        if watch.error is not None:  # paused on an error `Recovery` heals: healed
            log.info("image.watch_resumed", arn=watch.arn, after_failures=watch.paused_polls)
            watch.error, watch.paused_polls = None, 0
        watch.waiting = watch.last_error = None
        tracked, events = observe(watch.watched, watch.tracked, snapshot)
        # Before the commit, so the event is stored and delivered with them; in this
        # worker, so only this build waits for the look-ups.
        shown = progress = watch.progress
        lookups = self._progress_for(build_arn)
        if lookups is not None:
            # An event waits for its look-up only so long: a busy limiter must not
            # hold a notification back for a nice-to-have field.
            progress = await lookups.refresh(
                build_arn,
                snapshot.status,
                shown,
                deadline=PROGRESS_DEADLINE if events else None,
            )
        events = [await self._annotated(event, snapshot, progress) for event in events]
        if tracked != watch.tracked:
            routes = self._outbox.routes_for(events) if self._outbox and events else None
            await self._store.commit(
                watch.arn, tracked, events, routes, now=self._clock.now().timestamp()
            )
            if self._outbox and routes:
                self._outbox.wake()
        # Together, after the commit: /status never shows a step of the next status
        # under the previous one.
        watch.tracked, watch.progress = tracked, progress
        for event in events:
            if self._metrics is not None:
                self._metrics.count_transition(event)
            await self._tell_listeners(event)
        if progress is not None and not _same_step(progress, shown):
            self._tell_progress(watch.arn, progress)
        delay = self._next_poll(watch)
        dropped = self.watches.get(watch.arn) is not watch  # by a reload meanwhile
        if delay is not None and not dropped and not (self._stop_when_ended and watch.ended):
            self._push(watch.arn, self._clock.monotonic() + delay)
        self._check_all_ended()

    async def _annotated(
        self, event: Transition, snapshot: ImageSnapshot, progress: BuildProgress | None
    ) -> Transition:
        """`event`, with the diagnostics of its build if it is a transition into FAILED,
        else with its running step if one was looked up. Events are only made on a
        change of status, so diagnostics are gathered once per failure (once more if a
        retried build fails again); `gather` never raises."""
        if event.current.status is not ImageStatus.FAILED:
            return event if progress is None else event.model_copy(update={"progress": progress})
        if self._workflows is None:
            return event
        diagnostics = await gather(
            self._workflows, self.call_for(snapshot.arn), snapshot, log_lines=self._log_lines
        )
        return event.model_copy(update={"diagnostics": diagnostics})

    async def _resolve(self, watch: Watch) -> None:
        """Find the newest build of a one-shot version ARN, then poll that build."""
        assert self._resolver is not None
        try:
            found = await self._resolver(watch.arn)
        except FinalError as exc:
            watch.error, watch.waiting = exc, None  # stopped: no longer "no build yet"
            log.error("image.watch_stopped", **_error_fields(watch, exc))
            self._check_all_ended()
            return
        except RetryableError as exc:
            log.warning("image.resolve_failed", **_error_fields(watch, exc))
            watch.last_error = exc
            self._poll_again(watch)
            return
        watch.last_error = None
        if found is None:
            watch.waiting = f"no build of {watch.arn} yet"
            self._poll_again(watch)
            return
        watch.build_arn, watch.waiting = found, None
        watch.added_at = self._clock.monotonic()
        log.info("image.resolved", arn=watch.arn, build_arn=found)
        self._push(watch.arn, watch.added_at)

    def _pause(self, watch: Watch, exc: FinalError) -> None:
        """Park `watch` on an error the world outside can heal, and poll it again
        later: the status interval, doubled on each failure in a row, up to the cap."""
        assert self._recovery is not None
        said = watch.error
        first = said is None or (type(said), said.code) != (type(exc), exc.code)
        watch.error = watch.last_error = exc
        watch.paused_polls += 1
        status = watch.tracked.snapshot.status if watch.tracked else ImageStatus.PENDING
        interval = self._schedule.interval_for(status)
        exponent = min(watch.paused_polls - 1, 32)  # 2**32 intervals pass any cap
        delay = min(self._recovery.cap, interval * 2.0**exponent)
        # Jitter only shortens, so the cap holds and paused ARNs do not retry in step.
        delay *= self._random.uniform(1 - self._schedule.jitter, 1)
        if first:  # said once per pause and cause, not on every retry
            log.error(
                "image.watch_paused",
                **_error_fields(watch, exc),
                retry_in_s=round(delay, 1),
                note=f"retried with backoff (up to {self._recovery.cap:g}s) and at once on SIGHUP",
            )
        if self.watches.get(watch.arn) is watch:  # else dropped by a reload meanwhile
            self._push(watch.arn, self._clock.monotonic() + delay)

    def _within_grace(self, watch: Watch) -> bool:
        return self._clock.monotonic() - watch.added_at < self._schedule.not_found_grace

    def _poll_again(self, watch: Watch) -> None:
        """Schedule the next poll at the interval of the status last seen."""
        status = watch.tracked.snapshot.status if watch.tracked else ImageStatus.PENDING
        self._push(
            watch.arn,
            self._clock.monotonic() + self._jittered(self._schedule.interval_for(status)),
        )

    async def _tell_listeners(self, event: Transition) -> None:
        for listener in self._listeners:
            try:
                await listener.send(event)
            except Exception as exc:  # a failing observer must not stop the watching
                log.error(
                    "listener.failed",
                    listener=type(listener).__name__,
                    event_id=event.id,
                    error=f"{type(exc).__name__}: {exc}",
                )

    def _tell_progress(self, arn: str, progress: BuildProgress) -> None:
        for listener in self._progress_listeners:
            try:
                listener.progressed(arn, progress)
            except Exception as exc:  # a failing observer must not stop the watching
                log.error(
                    "listener.failed",
                    listener=type(listener).__name__,
                    arn=arn,
                    error=f"{type(exc).__name__}: {exc}",
                )

    def _check_all_ended(self) -> None:
        # Only a one-shot run stops when everything ended; the daemon never asks,
        # and with thousands of ended builds this scan would run on every poll.
        if not self._stop_when_ended:
            return
        if self.watches and all(w.ended for w in self.watches.values()):
            self._all_ended.set()

    async def _cancel_when_ended(self, scope: CancelScope) -> None:
        await self._all_ended.wait()
        scope.cancel()


def _same_step(a: BuildProgress | None, b: BuildProgress | None) -> bool:
    """The same workflow run at the same step: a new look-up of it is no news."""
    if a is None or b is None:
        return a is b
    return (a.workflow_execution_id, a.step, a.step_name) == (
        b.workflow_execution_id,
        b.step,
        b.step_name,
    )


def _is_history(build: ImageSnapshot, before: datetime | None) -> bool:
    """Ended before anyone followed its source: no news. A build without a creation
    date that is first seen ended counts as history too."""
    if before is None or not build.status.terminal:
        return False
    created = build.created
    if created is None:
        return True
    return (created if created.tzinfo else created.replace(tzinfo=UTC)) <= before


def _error_fields(watch: Watch, exc: ApiError) -> dict[str, str]:
    return {"arn": watch.arn, "error": type(exc).__name__, "code": exc.code, "message": str(exc)}
