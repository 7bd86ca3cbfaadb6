"""Prometheus metrics of one running watcher, and the readiness verdict.

Labels are bounded: outcomes, statuses, sink names from the config, account ids
from the config (`[aws.accounts]`, else "default") and the regions of the watched
ARNs. Never an ARN (thousands of them would explode the series count) and never a
URL or secret. Counters are bumped where things happen; gauges are computed when
scraped.

A labelled counter's child exists only once made, and Prometheus's `increase()` and
`rate()` count nothing for a series' first sample: a child made by its first `inc()`
starts at 1, and that first event is never counted. So every child that can be
foreseen is made at 0 beforehand (statuses here, sinks and (account, region) pairs
where the config is known); only what the config cannot name (a status AWS adds, a
region first seen through a reload or a push event) starts at its first event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Literal, Protocol, get_args, runtime_checkable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from watcher.aws import ImageSource
from watcher.clock import Clock
from watcher.credentials import DEFAULT_ACCOUNT
from watcher.errors import (
    AccessDenied,
    ApiError,
    BadCredentials,
    FinalError,
    RetryableError,
    Throttled,
    Unavailable,
)
from watcher.model import ImageSnapshot, ImageStatus, Transition

OUTCOMES = ("ok", "throttled", "unavailable", "final")
"""`outcome` of `ibwatch_api_calls_total` and `ibwatch_discovery_calls_total`."""
DISCOVERY_OPERATIONS = (
    "GetImagePipeline",
    "ListImagePipelines",
    "ListImagePipelineImages",
    "ListImageBuildVersions",
)
"""`operation` of `ibwatch_discovery_calls_total`: the API's names for discovery's calls."""
PIPELINE_STATUSES = ("ENABLED", "DISABLED")
"""A pipeline's `status`: the enum `PipelineStatus` of botocore's Image Builder model
(an unknown one shows under its own name)."""
STATUSES = tuple(status.value for status in ImageStatus)
"""The statuses AWS documents (an unknown one shows under its own name)."""
FIRST_SIGHTING = "none"
"""`from_status` of a build's first transition: nothing was seen of it before."""
NOT_POLLED = "UNKNOWN"
"""`status` of `ibwatch_images_watched` for a watched ARN not polled yet."""
DeliveryOutcome = Literal["delivered", "retryable", "refused", "gone"]
DELIVERY_OUTCOMES: tuple[DeliveryOutcome, ...] = get_args(DeliveryOutcome)
"""`outcome` of `ibwatch_deliveries_total`."""


@runtime_checkable
class AccountAware(Protocol):
    """A source that knows which credentials read each ARN (`AwsImageSource`)."""

    def account_of(self, arn: str) -> str:
        """The `account` label of calls about `arn`: its account id when listed in
        [aws.accounts], else "default"."""
        ...

    @property
    def account_keys(self) -> tuple[str, ...]:
        """Every `account` label its calls can have."""
        ...


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # Made at 0 by `MeteredSource`, which knows the accounts and regions.
        self.calls = Counter(
            "ibwatch_api_calls",
            "GetImage calls by outcome, by the account whose credentials made them "
            '(its id when listed in [aws.accounts], else "default") and by the region '
            "called: AWS's request quotas are per account and Region.",
            ["outcome", "account", "region"],
            registry=r,
        )
        self.poll_seconds = Histogram(
            "ibwatch_poll_duration_seconds",
            "Time one GetImage call took.",
            registry=r,
            buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.rate = Gauge(
            "ibwatch_rate_limit_requests_per_second",
            "The current allowed rate of the limiter of each account and region.",
            ["account", "region"],
            registry=r,
        )
        self.images = Gauge(
            "ibwatch_images_watched",
            "Watched ARNs by their build's status.",
            ["status"],
            registry=r,
        )
        self.transitions = Counter(
            "ibwatch_transitions",
            "Status transitions emitted.",
            ["from_status", "to_status"],
            registry=r,
        )
        # Every pair polling can show: statuses can be missed between two polls, and
        # retries and lifecycle rules move builds back, so any change is possible.
        for previous in (FIRST_SIGHTING, *STATUSES):
            for current in STATUSES:
                if current != previous:
                    self.transitions.labels(previous, current)
        self.deliveries = Counter(
            "ibwatch_deliveries",
            "Delivery attempts by sink and outcome.",
            ["sink", "outcome"],
            registry=r,
        )
        self.outbox_pending = Gauge(
            "ibwatch_outbox_pending", "Undelivered events per sink.", ["sink"], registry=r
        )
        self.outbox_oldest = Gauge(
            "ibwatch_outbox_oldest_pending_seconds",
            "Age of the oldest undelivered event per sink.",
            ["sink"],
            registry=r,
        )
        self.pipelines_disabled = Counter(
            "ibwatch_pipelines_disabled",
            "Pipelines seen turning DISABLED (Image Builder disables one after consecutive "
            "scheduled failures), or DISABLED when first seen.",
            registry=r,
        )
        # The counter cannot say how many are disabled now: discovery's memory of
        # statuses is its process's, so a restart (or a new leader term) counts every
        # disabled pipeline again. This says the present, set at the end of each pass.
        self.pipelines_followed = Gauge(
            "ibwatch_pipelines_followed",
            "Pipelines discovery follows, by their status (ENABLED, DISABLED) as last read; "
            "set after each discovery pass. Exported by the leader only.",
            ["status"],
            registry=r,
        )
        self.discovery_sources_failing = Gauge(
            "ibwatch_discovery_sources_failing",
            "Sources of builds (version ARNs, pipelines, the pipelines of an image-pipeline/* "
            "ARN) whose last listing failed, by the account whose credentials list them and "
            "their region; /status names each with its error. Set after each discovery pass. "
            "Exported by the leader only.",
            ["account", "region"],
            registry=r,
        )
        # Made at 0 by `watcher.discovery.Discovery`, which knows its sources.
        self.discovery_calls = Counter(
            "ibwatch_discovery_calls",
            "Discovery's API calls (GetImagePipeline, ListImagePipelines, "
            "ListImagePipelineImages, ListImageBuildVersions; each page and each retry is "
            "one) by outcome, account and region.",
            ["operation", "outcome", "account", "region"],
            registry=r,
        )
        self.progress_lookups = Counter(
            "ibwatch_progress_lookups",
            "Running-step look-ups after a poll of a build in progress, by outcome: done, "
            "skipped (over the [diagnostics] progress_share budget, or paused after a "
            "denial) or failed.",
            ["outcome"],
            registry=r,
        )
        for outcome in ("done", "skipped", "failed"):
            self.progress_lookups.labels(outcome)
        self.push_events = Counter(
            "ibwatch_push_events",
            "Messages read from the [events] queue: received, then matched (a watched "
            "build was polled at once), dropped (no watched source), malformed, or "
            "failed (its build cannot be polled: deleted).",
            ["outcome"],
            registry=r,
        )
        for outcome in ("received", "matched", "dropped", "malformed", "failed"):
            self.push_events.labels(outcome)
        self.push_lag = Histogram(
            "ibwatch_push_lag_seconds",
            "From a push event's time to the commit of the poll it caused.",
            registry=r,
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
        )
        self.push_healthy = Gauge(
            "ibwatch_push_healthy",
            "1 while the [events] queue answers, 0 while polling stands in for it.",
            registry=r,
        )
        self.dead_letters = Gauge(
            "ibwatch_dead_letters", "Dead letters per sink.", ["sink"], registry=r
        )
        # Without it, a store that cannot answer a scrape (its outbox gauges left out)
        # would silence every alert on the outbox rather than raise one.
        self.outbox_readable = Gauge(
            "ibwatch_outbox_readable",
            "1 when this scrape read the outbox from the state store, 0 when it could not "
            "(an error, or no answer in time): the outbox gauges are then left out.",
            registry=r,
        )
        # /readyz is a probe, not a series: Prometheus sees readiness only through this.
        self.ready = Gauge(
            "ibwatch_ready",
            "1 while /readyz answers 200 (ready), 0 while it answers 503 (it says why).",
            registry=r,
        )

    def count_transition(self, event: Transition) -> None:
        previous = event.previous.status.value if event.previous else FIRST_SIGHTING
        self.transitions.labels(previous, event.current.status.value).inc()

    def count_deliveries_to(self, sinks: Iterable[str]) -> None:
        """Make each of these sinks' delivery counters at 0 (see the module's docstring)."""
        for sink in sinks:
            for outcome in DELIVERY_OUTCOMES:
                self.deliveries.labels(sink, outcome)

    def calls_total(self, outcome: str) -> float:
        """GetImage calls with `outcome`, every account together."""
        return sum(
            sample.value
            for metric in self.calls.collect()
            for sample in metric.samples
            if sample.name.endswith("_total") and sample.labels["outcome"] == outcome
        )

    def set_rates(self, rates: Mapping[tuple[str, str], float]) -> None:
        """The rate each (account, region) limiter allows now (`LimiterPool.rates`)."""
        for (account, region), rate in rates.items():
            self.rate.labels(account, region).set(rate)

    def set_pipelines(self, statuses: Iterable[str]) -> None:
        """The statuses of the pipelines discovery follows now; ENABLED and DISABLED
        are always there, at 0 when none has it, so a panel shows 0 rather than
        nothing."""
        counts = dict.fromkeys(PIPELINE_STATUSES, 0)
        for status in statuses:
            counts[status] = counts.get(status, 0) + 1
        self.pipelines_followed.clear()
        for status, count in counts.items():
            self.pipelines_followed.labels(status).set(count)

    def set_sources_failing(self, failing: Mapping[tuple[str, str], int]) -> None:
        """How many sources fail now per (account, region); every pair discovery knows
        is in `failing`, at 0 when none of its sources fails."""
        self.discovery_sources_failing.clear()
        for (account, region), count in failing.items():
            self.discovery_sources_failing.labels(account, region).set(count)

    def set_images(self, statuses: Iterable[str]) -> None:
        counts: dict[str, int] = {}
        for status in statuses:
            counts[status] = counts.get(status, 0) + 1
        self.images.clear()
        for status, count in counts.items():
            self.images.labels(status).set(count)


class Readiness:
    """Ready when recent calls reached the API (or were throttled by it); not ready
    when every call of the last `window` seconds failed on access, credentials or
    the network. With no call at all in the window, the last verdict stands.
    Constant time per call: it runs on every poll."""

    def __init__(self, clock: Clock, window: float = 60.0) -> None:
        self._clock = clock
        self._window = window
        self._last_reached: float | None = None
        self._last_failed: float | None = None
        self.reason = "no call has been made yet"

    def record(self, reached: bool, why: str) -> None:
        now = self._clock.monotonic()
        if reached:
            self._last_reached = now
        else:
            self._last_failed = now
            self.reason = why

    @property
    def ready(self) -> bool:
        if self._last_reached is None:
            return False
        if self._last_failed is None:
            return True
        if self._last_reached >= self._clock.monotonic() - self._window:
            return True
        return self._last_reached > self._last_failed


class MeteredSource:
    """Wraps an image source: counts each call by outcome, account and region, times
    it, and tells the readiness verdict whether the API was reached."""

    def __init__(
        self,
        source: ImageSource,
        metrics: Metrics,
        readiness: Readiness,
        clock: Clock,
        *,
        region: str | None = None,
        arns: Iterable[str] = (),
    ) -> None:
        """`region` (the default one, `[aws] region`) and `arns` (the configured image
        and pipeline ARNs): the counters of every account in `region`, and of each
        ARN's account in its own region, are made at 0 now."""
        self._source = source
        self._metrics = metrics
        self._readiness = readiness
        self._clock = clock
        self._account_of: Callable[[str], str] = _default_account
        accounts: tuple[str, ...] = (DEFAULT_ACCOUNT,)
        if isinstance(source, AccountAware):
            self._account_of, accounts = source.account_of, source.account_keys
        keys = {(account, region) for account in accounts if region is not None}
        keys |= {(self._account_of(arn), region_of(arn)) for arn in arns}
        # A labelled child per (outcome, account, region), made once, then found in a
        # dict rather than by `labels()` on each call.
        self._counters: dict[tuple[str, str, str], Counter] = {}
        for account, called in sorted(keys):
            for outcome in OUTCOMES:
                self._counter(outcome, account, called)

    async def get(self, arn: str) -> ImageSnapshot:
        started = self._clock.monotonic()
        try:
            snapshot = await self._source.get(arn)
        except Throttled:
            self._count("throttled", arn, started, reached=True, why="")
            raise
        except Unavailable as exc:
            why = f"API unavailable: {exc.code}"
            self._count("unavailable", arn, started, reached=False, why=why)
            raise
        except (AccessDenied, BadCredentials) as exc:
            why = f"{type(exc).__name__}: {exc.code}"
            self._count("final", arn, started, reached=False, why=why)
            raise
        except FinalError:
            self._count("final", arn, started, reached=True, why="")  # a 404 reached the API
            raise
        self._count("ok", arn, started, reached=True, why="")
        return snapshot

    def _counter(self, outcome: str, account: str, region: str) -> Counter:
        key = (outcome, account, region)
        found = self._counters.get(key)
        if found is None:
            found = self._counters[key] = self._metrics.calls.labels(*key)
        return found

    def _count(self, outcome: str, arn: str, started: float, *, reached: bool, why: str) -> None:
        self._counter(outcome, self._account_of(arn), region_of(arn)).inc()
        self._metrics.poll_seconds.observe(self._clock.monotonic() - started)
        self._readiness.record(reached, why)


def call_outcome(exc: ApiError) -> str:
    """The `outcome` label of a call that failed with `exc`."""
    if isinstance(exc, Throttled):
        return "throttled"
    if isinstance(exc, RetryableError):
        return "unavailable"
    return "final"


def _default_account(_arn: str) -> str:
    return DEFAULT_ACCOUNT


def region_of(arn: str) -> str:
    """An ARN's region (its fourth field), as `LimiterPool.for_arn` reads it."""
    parts = arn.split(":", 4)
    return parts[3] if len(parts) > 3 else ""
