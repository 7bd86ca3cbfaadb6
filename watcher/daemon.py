"""`ibwatch run`: the long-running daemon. Builds the engine, the dispatcher and the
HTTP endpoint from a validated config and runs them in one task group.

Signals: SIGTERM/SIGINT stop polling at once, give pending deliveries the grace
period, then exit 0 (what is left stays in the outbox). SIGHUP reloads the config
file: added and removed ARNs and sinks take effect; a file that fails to load or
to build is refused whole and the running configuration stays. SIGHUP also polls
at once every ARN paused on credentials or access (otherwise retried on a backoff
of up to five minutes): the way to say "the role is fixed now".

With PostgreSQL state several replicas run on one database and only the leader
watches and delivers (`watcher.leadership`): each term of leadership builds its
engine, discovery, push consumer and dispatcher afresh, from what the store holds
when it begins, and the term's end cancels them. The HTTP endpoint and the signals
serve every replica, leader or standby. Deliveries and polls first ask the
leadership's lease (`Leadership.check_lease`), so a leader paused past it acts on
nothing it held in memory. Once SIGTERM is received no new term is taken.
"""

from __future__ import annotations

import random
import signal
from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import structlog
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session

from watcher import server
from watcher._validation import FileError
from watcher._version import __version__
from watcher.aws import AwsImageSource, ImageSource
from watcher.clock import Clock
from watcher.config import Config, WatchConfig, load
from watcher.config.events import queue_region
from watcher.delivery import DeliveryPolicy, Dispatcher
from watcher.discovery import Discovery, Sources
from watcher.engine import Engine, Recovery, Schedule
from watcher.leadership import LeaderMetrics, Leadership, Sole
from watcher.metrics import MeteredSource, Metrics, Readiness
from watcher.model import ImageSnapshot
from watcher.operator_commands import watched_counts
from watcher.push import PushConsumer, PushHealth, Queue, visibility_for
from watcher.push_sources import PushSources
from watcher.ratelimit import LimiterPool
from watcher.retry import RetryPolicy
from watcher.sinks.http import HttpPoster
from watcher.store import Fenced, PostgresStore, StateStore, StoreError, open_store
from watcher.store.base import Pruned
from watcher.wiring import build_routes

log = structlog.get_logger("ibwatch")

PRUNE_INTERVAL = 3600.0
"""Seconds between prunes of the state file ([state] keep_events); one runs at start."""


def _watched_keys(watch: WatchConfig) -> dict[str, object]:
    """The [watch] keys a reload applies: what to watch."""
    return {"arns": watch.arns, "pipelines": watch.pipelines}


@dataclass
class Service:
    """Everything a running daemon owns."""

    config: Config
    store: StateStore
    source: AwsImageSource
    poster: HttpPoster
    dispatcher: Dispatcher
    engine: Engine
    clock: Clock
    discovery: Discovery
    metrics: Metrics = field(default_factory=Metrics)
    readiness: Readiness | None = None
    push: PushConsumer | None = None
    """Reads `[events] queue_url`, when one is set."""
    leadership: Leadership = field(default_factory=Sole)
    """Whether this replica acts: always, on an SQLite state file."""
    build_term: Callable[[Config], TermParts] | None = None
    """Builds what one term of leadership runs, from the current config."""
    term_ended: anyio.Event | None = None
    """Set when the current (or last) term ends; None before the first."""

    def renew(self) -> None:
        """Fresh term parts (dispatcher, engine, discovery, push), built from the
        current config: a new term starts from what the store holds now, never from
        what this replica remembered of an earlier term."""
        assert self.build_term is not None
        self.dispatcher, self.engine, self.discovery, self.push = self.build_term(self.config)


TermParts = tuple[Dispatcher, Engine, Discovery, PushConsumer | None]
"""What one term of leadership runs, besides the stores and clients the service keeps."""


@asynccontextmanager
async def open_service(
    config: Config,
    *,
    clock: Clock,
    endpoint_url: str | None = None,
    source_session: AioSession | None = None,
) -> AsyncIterator[Service]:
    """Open the store, the AWS clients and the HTTP session; close them after."""
    store = await open_store(config.state, exclusive=True)
    metrics = Metrics()
    readiness = Readiness(clock)
    leadership = _leadership_of(config, store, clock, metrics)
    # Asked before each delivery and each poll; a sole daemon always may.
    lease = leadership.check_lease if leadership.shared else None
    session = source_session or get_session()
    try:
        async with (
            _sqs_client(config, session) as sqs,
            AwsImageSource(
                clock=clock,
                region=config.aws.region,
                endpoint_url=endpoint_url or config.aws.endpoint_url,
                concurrency=config.watch.concurrency,
                connect_timeout=config.aws.connect_timeout,
                read_timeout=config.aws.read_timeout,
                session=session,
                accounts=config.aws.accounts,
            ) as source,
            HttpPoster(user_agent=f"ibwatch/{__version__}", clock=clock) as poster,
        ):

            def build_term(config: Config) -> TermParts:
                # Each term's parts are new (Service.renew); the clients above last.
                delivery = config.delivery
                dispatcher = Dispatcher(
                    store=store,
                    clock=clock,
                    policy=DeliveryPolicy(
                        base=delivery.backoff_base,
                        cap=delivery.backoff_cap,
                        retry_after_cap=delivery.retry_after_cap,
                        max_age=delivery.max_age,
                    ),
                    routes=build_routes(config.sinks, poster=poster, clock=clock),
                    metrics=metrics,
                    lease=lease,
                )
                watch = config.watch
                metered: ImageSource = MeteredSource(
                    source,
                    metrics,
                    readiness,
                    clock,
                    region=config.aws.region,
                    arns=(*config.watch.arns, *config.watch.pipelines),
                )
                leased = metered if lease is None else _Leased(metered, lease)
                engine = Engine(
                    source=leased,
                    workflows=source,
                    store=store,
                    clock=clock,
                    limiter=LimiterPool(watch.max_tps, clock, account_of=source.account_of),
                    schedule=Schedule(
                        interval_for=watch.interval_for,
                        jitter=watch.jitter,
                        failed_recheck_interval=watch.failed_recheck_interval,
                        failed_recheck_window=watch.failed_recheck_window,
                        not_found_grace=watch.not_found_grace,
                    ),
                    retry=RetryPolicy(
                        attempts=watch.retry.attempts, base=watch.retry.base, cap=watch.retry.cap
                    ),
                    concurrency=watch.concurrency,
                    rng=random.Random(),
                    outbox=dispatcher,
                    metrics=metrics,
                    recovery=Recovery(cap=watch.paused_retry_cap),
                    progress_share=config.diagnostics.progress_share,
                    log_lines=config.diagnostics.log_lines,
                    lease=lease,
                )
                discovery = Discovery(
                    edge=source,
                    engine=engine,
                    store=store,
                    clock=clock,
                    interval=watch.discovery_interval,
                    sources=sources_of(config),
                    metrics=metrics,
                    readiness=readiness,
                    history_horizon=config.state.keep_events,
                    account_of=source.account_of,
                )
                push = None
                if sqs is not None and config.events.queue_url is not None:
                    push = PushConsumer(
                        queue=Queue(sqs, config.events.queue_url),
                        engine=engine,
                        # Through the leased source: an adoption is a poll like any other.
                        get=lambda arn: engine.call(lambda: leased.get(arn), urgent=True, arn=arn),
                        sources=push_sources_of(config),
                        clock=clock,
                        safety_interval=config.events.safety_interval,
                        wait_time=config.events.wait_time,
                        visibility_timeout=config.events.visibility_timeout
                        or visibility_for(watch.max_tps),
                        rng=random.Random(),
                        metrics=metrics,
                        follow_all=config.events.follow_all,
                        keep_malformed=config.events.malformed == "keep",
                    )
                return dispatcher, engine, discovery, push

            dispatcher, engine, discovery, push = build_term(config)
            yield Service(
                config,
                store,
                source,
                poster,
                dispatcher,
                engine,
                clock,
                discovery,
                metrics,
                readiness,
                push,
                leadership=leadership,
                build_term=build_term,
            )
    finally:
        await store.close()


@asynccontextmanager
async def _sqs_client(config: Config, session: AioSession) -> AsyncIterator[Any]:
    """The aiobotocore `sqs` client of `[events] queue_url`, or None without one. Its
    endpoint is botocore's (AWS_ENDPOINT_URL_SQS overrides it), never `[aws]
    endpoint_url`, which is Image Builder's; its region is the queue URL's."""
    url = config.events.queue_url
    if url is None:
        yield None
        return
    client = session.create_client(
        "sqs",
        region_name=queue_region(url) or config.aws.region,
        config=AioConfig(
            connect_timeout=config.aws.connect_timeout,
            # A long poll holds the connection for up to wait_time seconds.
            read_timeout=config.events.wait_time + config.aws.read_timeout,
            retries={"mode": "standard", "total_max_attempts": 3},
        ),
    )
    async with client as sqs:
        yield sqs


class _Leased:
    """An image source that polls only while this replica's lease lasts: a leader
    paused past it must not spend the API's rate on a term that is over."""

    def __init__(self, source: ImageSource, lease: Callable[[], None]) -> None:
        self._source = source
        self._lease = lease

    async def get(self, arn: str) -> ImageSnapshot:
        self._lease()  # raises LeaseExpired, which ends the term
        return await self._source.get(arn)


def probes_of(service: Service) -> server.Probes:
    """What /healthz, /readyz and /metrics read of a running daemon."""
    assert service.readiness is not None
    # Read through the service at each request: a new term brings new parts.
    return server.Probes(
        lambda: service.engine,
        lambda: service.dispatcher,
        service.store,
        service.metrics,
        service.readiness,
        service.clock,
        store_open=lambda: service.store.is_open,
        push=lambda: _push_health(service.push),
        leadership=service.leadership,
        failing_sources=lambda: service.discovery.failing(),
    )


def _push_health(push: PushConsumer | None) -> PushHealth | None:
    return None if push is None else push.health


def _leadership_of(config: Config, store: StateStore, clock: Clock, metrics: Metrics) -> Leadership:
    """Always the leader on an SQLite file; elected among the replicas of a database."""
    counted = LeaderMetrics(metrics.registry)
    url = config.state.database_url
    if url is None or not isinstance(store, PostgresStore):
        return Sole(counted)
    from watcher.leadership.postgres import PostgresLeadership  # psycopg: only now

    return PostgresLeadership(
        url, store=store, clock=clock, failover=config.ha.failover, metrics=counted
    )


async def run_daemon(config: Config, *, clock: Clock, config_path: Path | None = None) -> int:
    """Watch and deliver until SIGTERM/SIGINT; returns the exit code (0)."""
    async with open_service(config, clock=clock) as service:
        app = server.create_app(probes_of(service))
        http = await server.start(app, config.server.host, config.server.port)
        # The address bound, so that `listen = "127.0.0.1:0"` says which port it got.
        listen = server.bound_address(http) or config.server.listen
        try:
            with anyio.open_signal_receiver(
                signal.SIGTERM, signal.SIGINT, signal.SIGHUP
            ) as signals:
                # Said only once the signals are ours: a SIGTERM sent on seeing this
                # line must stop the daemon gracefully, not kill it.
                log.info(
                    "ibwatch.started",
                    version=__version__,
                    **watched_counts(config),  # what `ibwatch check-config` says too
                    listen=listen,
                    config=config.redacted(),
                )
                await serve(service, signals, config_path)
        finally:
            await http.cleanup()
        left = await _undelivered(service)
        after = "by the leader" if service.leadership.shared else "after the next start"
        log.info(
            "ibwatch.stopped",
            undelivered="unknown" if left is None else left,
            note=f"kept in the outbox; sent {after}" if left != 0 else "",
        )
    return 0


UNDELIVERED_WITHIN = 1.0
"""Seconds the count of undelivered events at exit may take (a quarter of the grace
period at most): the database may be down, and exiting matters more."""


async def _undelivered(service: Service) -> int | None:
    """How many deliveries are left in the outbox; None when the store cannot say
    quickly (the database is down): exiting matters more than the count."""
    with service.clock.move_on_after(min(UNDELIVERED_WITHIN, service.config.shutdown.grace / 4)):
        try:
            return sum(s.pending for s in (await service.store.outbox_stats()).values())
        except StoreError as exc:
            log.warning("state.unreadable_at_exit", error=str(exc))
    return None


async def serve(service: Service, signals: AsyncIterable[int], config_path: Path | None) -> None:
    """Watch and deliver, acting on each signal as it comes, until SIGTERM/SIGINT.
    SIGHUP reloads the config file and polls every parked ARN that can recover now:
    whoever fixed the credentials or the policy says so with it.

    Only while this replica leads: a standby waits, and takes over with a term of
    its own when it may (`watcher.leadership`)."""
    stopping = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(service.leadership.run, partial(_term, service, stopping))
        async for signum in signals:
            if signum == signal.SIGHUP:
                await _reload(service, config_path)
                _retry_now(service)
                continue
            log.info(
                "ibwatch.stopping",
                signal=signal.Signals(signum).name,
                grace_s=service.config.shutdown.grace,
            )
            stopping.set()
            # No new term from now on. A leader keeps its term, lock and heartbeat
            # through the drain (a standby takes over once it exits): its deliveries
            # stay fenced, and handing over mid-drain would only send them twice.
            service.leadership.retire()
            await _drain(service)
            group.cancel_scope.cancel()
            break


async def _term(service: Service, stopping: anyio.Event) -> None:
    """One term as the leader: watch (until `stopping`) and deliver, until cancelled,
    when the term or the daemon ends."""
    shared = service.leadership.shared
    if shared:
        service.renew()  # the state as the store holds it now
    ended = service.term_ended = anyio.Event()
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(_watch, service, stopping)
            await service.dispatcher.run()
    finally:
        ended.set()
        # What only a leader knows of now: a past term's values must not linger.
        service.metrics.rate.clear()
        service.metrics.push_healthy.set(0)
        service.metrics.pipelines_followed.clear()
        service.metrics.discovery_sources_failing.clear()
        if shared:
            service.renew()  # a standby shows none of a past term's builds


def _retry_now(service: Service) -> None:
    if service.leadership.role != "leader":
        return  # a standby polls nothing: its next term starts afresh
    retried = service.engine.retry_parked()
    service.discovery.relist()
    if retried:
        log.info("image.retrying_paused", arns=len(retried), note="on SIGHUP")


def _changed_keys(old: Config, new: Config, sections: list[str]) -> list[str]:
    """`section.key` for each setting that differs, so the log says what to restart for."""
    changed = []
    for section in sections:
        before, after = getattr(old, section), getattr(new, section)
        applied = _watched_keys(old.watch) if section == "watch" else {}
        changed += [
            f"{section}.{key}"
            for key in type(before).model_fields
            if key not in applied and getattr(before, key) != getattr(after, key)
        ]
    return changed


def push_sources_of(config: Config) -> PushSources:
    return PushSources(versions=config.watch.version_arns, pipelines=config.watch.pipelines)


def sources_of(config: Config) -> Sources:
    return Sources(versions=config.watch.version_arns, pipelines=config.watch.pipelines)


async def _watch(service: Service, stopping: anyio.Event) -> None:
    """Poll, discover and read the push queue until `stopping` is set."""
    async with anyio.create_task_group() as group:
        group.start_soon(_cancel_when_set, stopping, group.cancel_scope)
        group.start_soon(service.discovery.run)
        group.start_soon(_prune, service)
        if service.push is not None:
            group.start_soon(service.push.run)
        await service.engine.run(service.config.watch.build_arns)
        group.cancel_scope.cancel()


async def _cancel_when_set(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def _prune(service: Service) -> None:
    """Keep the state file to `[state] keep_events` of history: at start, then hourly.
    A failure is logged and tried again next time; it never stops the daemon. A
    refusal by the fence ends the term, as every write's does."""
    while True:
        config = service.config
        try:
            pruned = await service.store.prune(
                before=service.clock.now().timestamp() - config.state.keep_events,
                keep=config.watch.build_arns,
            )
        except Fenced:
            raise
        except Exception as exc:  # the store's, or a bug: either way, polling goes on
            log.error(
                "state.prune_failed",
                error=f"{type(exc).__name__}: {exc}",
                note="tried again within the hour",
            )
        else:
            if pruned != Pruned():
                log.info(
                    "state.pruned",
                    events=pruned.events,
                    builds=pruned.builds,
                    older_than_s=config.state.keep_events,
                )
        await service.clock.sleep(PRUNE_INTERVAL)


async def _drain(service: Service) -> None:
    """Let pending deliveries finish, for the grace period at most (on the clock),
    or until the term ends (its dispatcher then delivers nothing more). A standby has
    none: the leader delivers."""
    if service.leadership.role != "leader":
        return
    dispatcher, ended = service.dispatcher, service.term_ended
    try:
        with service.clock.move_on_after(service.config.shutdown.grace):
            async with anyio.create_task_group() as group:
                if ended is not None:
                    group.start_soon(_cancel_when_set, ended, group.cancel_scope)
                await dispatcher.drained()
                group.cancel_scope.cancel()
    except StoreError as exc:
        # The database gone (a pool timeout can outlast the term): what is left stays
        # in the outbox for the next leader, under the same ids. Exit as planned.
        log.warning("shutdown.drain_stopped", error=str(exc))


async def _reload(service: Service, config_path: Path | None) -> None:
    if config_path is None:
        log.warning("config.reload_skipped", why="no config file to reload")
        return
    # Everything that can fail comes before the first change: a reload is applied
    # whole or not at all, and a bad file never stops a healthy daemon.
    try:
        new = load(config_path)
        routes = build_routes(new.sinks, poster=service.poster, clock=service.clock)
        added_arns, removed_arns = await _rewatch(service, new)
    except FileError as exc:
        _refused(config_path, exc.problems)
        return
    except Exception as exc:  # a sink's constructor, the store: whatever it is, refuse
        _refused(config_path, [f"{type(exc).__name__}: {exc}"])
        return
    old = service.config
    # From here on nothing raises: the rest of the new configuration swaps in.
    service.discovery.set_sources(sources_of(new))
    if service.push is not None:
        service.push.set_sources(push_sources_of(new))
    added_sinks, removed_sinks = service.dispatcher.set_routes(routes)
    unchanged = {
        "watch": new.watch.model_copy(update=_watched_keys(old.watch)) == old.watch,
        "aws": new.aws == old.aws,
        "state": new.state == old.state,
        "delivery": new.delivery == old.delivery,
        "server": new.server == old.server,
        "diagnostics": new.diagnostics == old.diagnostics,
        "events": new.events == old.events,
        "ha": new.ha == old.ha,
    }
    service.config = old.model_copy(
        update={
            "sinks": new.sinks,
            "shutdown": new.shutdown,
            "watch": old.watch.model_copy(update=_watched_keys(new.watch)),
        }
    )
    log.info(
        "config.reloaded",
        added_arns=added_arns,
        removed_arns=removed_arns,
        added_sinks=added_sinks,
        removed_sinks=removed_sinks,
    )
    needs_restart = [section for section, same in unchanged.items() if not same]
    if needs_restart:
        log.warning(
            "config.needs_restart",
            sections=needs_restart,
            keys=_changed_keys(old, new, needs_restart),
            note="only ARNs, pipelines, sinks and the shutdown grace change on reload",
        )


async def _rewatch(service: Service, new: Config) -> tuple[list[str], list[str]]:
    """Have the leader's engine watch `new`'s ARNs: (added, removed). A standby's
    engine stays idle: its next term starts from the config, swapped in right after.
    A term can end or begin during the await: the engine of the term running then is
    asked in turn, so that none is left on the old list (the config is swapped with
    no await after this, so a term that begins later starts from the new one)."""
    old = service.config.watch.build_arns
    added = [arn for arn in new.watch.build_arns if arn not in old]
    removed = [arn for arn in old if arn not in new.watch.build_arns]
    while service.leadership.role == "leader":
        engine = service.engine
        added, removed = await engine.watch_arns(new.watch.build_arns)
        if service.engine is engine:
            break
    return added, removed


def _refused(config_path: Path, problems: list[str]) -> None:
    log.error(
        "config.reload_refused",
        file=str(config_path),
        problems=problems,
        note="the running configuration stays in force",
    )
