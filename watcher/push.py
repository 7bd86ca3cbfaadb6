"""The push fast path: long-poll an SQS queue of Image Builder state-change events,
and poll each build an event names at once. GetImage stays the truth: an event only
says which build to look at now, so duplicates, reorders and the event's own claims
do no harm. A message is deleted only after that poll's state and events are
committed, so a crash in between brings it back (at-least-once).

While the queue answers, the engine polls builds in progress only every
`[events] safety_interval` (events are best effort); when ReceiveMessage fails, it
falls back to the status intervals until the queue answers again.

SQS facts relied on (botocore's sqs service model): ReceiveMessage's
WaitTimeSeconds is at most 20 ("long polling"), MaxNumberOfMessages 1 to 10, and
VisibilityTimeout hides the received messages from other receives for that long;
DeleteMessage takes the ReceiptHandle of the receive.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from watcher.backoff import full_jitter
from watcher.clock import Clock
from watcher.errors import ApiError, FinalError, RetryableError
from watcher.leadership import LeaseExpired
from watcher.model import Arn, ImageSnapshot
from watcher.push_messages import MalformedMessage, parse_message
from watcher.push_sources import PushSources
from watcher.store.errors import Fenced

if TYPE_CHECKING:
    import random

    from watcher.engine import Engine, PollOutcome
    from watcher.metrics import Metrics

log = structlog.get_logger("ibwatch")

MAX_MESSAGES = 10
"""ReceiveMessage's MaxNumberOfMessages: at most 10 (the model)."""

IN_FLIGHT = 50
"""Messages handled at once: five batches' worth."""

RECEIVE_BACKOFF_CAP = 60.0
"""Seconds at most between two ReceiveMessage tries while the queue fails."""


class Queue:
    """The three SQS calls the consumer makes, on an aiobotocore `sqs` client."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self.url = queue_url

    async def receive(self, *, wait: int, visibility: int) -> list[dict[str, Any]]:
        from watcher.aws import classify_errors  # the one place AWS errors are read

        with classify_errors(self.url):
            response = await self._client.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=MAX_MESSAGES,
                WaitTimeSeconds=wait,
                VisibilityTimeout=visibility,
                # How often a message was received: a kept malformed one is said once.
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
        messages: list[dict[str, Any]] = response.get("Messages") or []
        return messages

    async def has_dead_letter_queue(self) -> bool:
        """Whether the queue has a redrive policy (GetQueueAttributes RedrivePolicy)."""
        from watcher.aws import classify_errors

        with classify_errors(self.url):
            found = await self._client.get_queue_attributes(
                QueueUrl=self.url, AttributeNames=["RedrivePolicy"]
            )
        return bool((found.get("Attributes") or {}).get("RedrivePolicy"))

    async def delete(self, receipt: str) -> None:
        from watcher.aws import classify_errors

        with classify_errors(self.url):
            await self._client.delete_message(QueueUrl=self.url, ReceiptHandle=receipt)


@dataclass
class PushHealth:
    """Whether the queue answers: what /readyz says and the engine's schedule uses."""

    healthy: bool = False
    reason: str = "the queue was not read yet"


class PushConsumer:
    def __init__(
        self,
        *,
        queue: Queue,
        engine: Engine,
        get: Callable[[str], Awaitable[ImageSnapshot]],
        sources: PushSources,
        clock: Clock,
        safety_interval: float,
        wait_time: int,
        visibility_timeout: int,
        rng: random.Random,
        metrics: Metrics | None = None,
        follow_all: bool = False,
        keep_malformed: bool = False,
    ) -> None:
        """`get` is GetImage through the engine's limiter and retries; `sources` say
        what makes a build not watched yet worth watching (`set_sources` on a reload)."""
        self._queue = queue
        self._engine = engine
        self._get = get
        self.sources = sources
        self._clock = clock
        self._safety = safety_interval
        self._wait = wait_time
        self._visibility = visibility_timeout
        self._rng = rng
        self._metrics = metrics
        self._follow_all = follow_all
        self._keep_malformed = keep_malformed
        self.health = PushHealth()
        self._failures = 0

    async def run(self) -> None:
        """Receive and handle messages until cancelled (from when the engine has
        loaded its watches: an event of a configured build is not dropped at start)."""
        await self._engine.wait_started()
        if self._keep_malformed:
            await self._check_dead_letter_queue()
        # Messages are handled while the next ones are received: one slow poll (a
        # throttle's backoff) must not hold up the events behind it. At most
        # IN_FLIGHT at once; past that, receiving waits.
        room = anyio.CapacityLimiter(IN_FLIGHT)
        try:
            async with anyio.create_task_group() as handlers:
                while True:
                    try:
                        messages = await self._queue.receive(
                            wait=self._wait, visibility=self._visibility
                        )
                    except ApiError as exc:
                        await self._receive_failed(exc)
                        continue
                    self._receive_worked()
                    # Polls whose GetImage goes out after this answer these events.
                    received_at = self._engine.fetch_mark()
                    for message in messages:
                        turn = object()  # whose place in `room` this is
                        await room.acquire_on_behalf_of(turn)
                        handlers.start_soon(self._handle_in, room, turn, message, received_at)
        finally:
            self._engine.set_safety_interval(None)

    async def _handle_in(
        self,
        room: anyio.CapacityLimiter,
        turn: object,
        message: dict[str, Any],
        received_at: int,
    ) -> None:
        try:
            await self._handle_safely(message, received_at)
        finally:
            room.release_on_behalf_of(turn)

    def set_sources(self, sources: PushSources) -> None:
        """The watched versions and pipelines changed (SIGHUP)."""
        self.sources = sources

    async def _check_dead_letter_queue(self) -> None:
        """`malformed = "keep"` leaves malformed messages for the redrive policy to move
        to a dead-letter queue; without one they would come back until they expire."""
        try:
            kept = await self._queue.has_dead_letter_queue()
            problem = "the queue has no redrive policy (no dead-letter queue)"
        except ApiError as exc:
            kept, problem = False, f"its redrive policy could not be read: {exc}"
        if not kept:
            self._keep_malformed = False
            log.error(
                "push.malformed_not_kept",
                queue=self._queue.url,
                problem=problem,
                note='[events] malformed = "keep" needs a dead-letter queue; '
                "malformed messages are deleted instead",
            )

    async def _receive_failed(self, exc: ApiError) -> None:
        self._failures += 1
        if self.health.healthy or self._failures == 1:
            log.error(
                "push.unavailable",
                queue=self._queue.url,
                error=type(exc).__name__,
                code=exc.code,
                message=str(exc),
                note="falling back to polling at the status intervals until the queue answers",
            )
        if self.health.healthy:  # the switch, not every failed try, reschedules
            self._engine.set_safety_interval(None)
        self.health = PushHealth(False, f"{type(exc).__name__} ({exc.code}): {exc}")
        if self._metrics is not None:
            self._metrics.push_healthy.set(0)
        await self._clock.sleep(
            full_jitter(self._failures, base=1.0, cap=RECEIVE_BACKOFF_CAP, rng=self._rng)
        )

    def _receive_worked(self) -> None:
        if not self.health.healthy:
            if self._failures:
                log.info("push.available", queue=self._queue.url, after_failures=self._failures)
            self.health = PushHealth(True, "healthy")
            self._engine.set_safety_interval(self._safety)
            if self._metrics is not None:
                self._metrics.push_healthy.set(1)
        self._failures = 0

    async def _handle_safely(self, message: dict[str, Any], received_at: int) -> None:
        """`_handle`, and a bug in it costs one message (left in the queue, so it comes
        back, and the dead-letter queue ends it), never the daemon."""
        try:
            await self._handle(message, received_at)
        except (Fenced, LeaseExpired):
            raise  # a newer leader took over, or may have: this replica's term ends
        except Exception as exc:
            log.error(
                "push.handling_failed",
                queue=self._queue.url,
                message_id=message.get("MessageId"),
                error=f"{type(exc).__name__}: {exc}",
            )

    async def _handle(self, message: dict[str, Any], received_at: int) -> None:
        """Handle one message received when the engine's `fetch_mark` was
        `received_at`."""
        self._count("received")
        receipt = message.get("ReceiptHandle")
        try:
            event = parse_message(str(message.get("Body", "")))
        except MalformedMessage as exc:
            if self._keep_malformed:
                # Left for the redrive policy: said and counted on its first receive.
                if _receive_count(message) <= 1:
                    self._malformed(message, exc, "kept: the dead-letter queue will hold it")
                return
            self._malformed(message, exc, 'deleted; [events] malformed = "keep" keeps them')
            await self._delete(receipt)
            return
        log.debug(
            "push.received",
            arn=event.build_arn if event else None,
            status=event.status if event else None,
            message_id=message.get("MessageId"),
        )
        if event is None:  # well-formed, but no Image Builder state change
            self._count("dropped")
            await self._delete(receipt)
            return
        self._engine.events_from(Arn.parse(event.build_arn).region)
        try:
            outcome = await self._poll(event.build_arn, received_at)
        except FinalError as exc:  # adopting it: this build cannot be polled
            log.warning(
                "push.poll_failed",
                arn=event.build_arn,
                error=type(exc).__name__,
                code=exc.code,
                message=str(exc),
            )
            self._count("failed")
            await self._delete(receipt)
            return
        except RetryableError as exc:
            log.warning(
                "push.poll_failed",
                arn=event.build_arn,
                error=type(exc).__name__,
                code=exc.code,
                message=str(exc),
            )
            return  # left in the queue: received again after the visibility timeout
        if outcome == "failed":
            if self._engine.is_stopped(event.build_arn):
                # Parked, or paused until its error heals (its own backoff polls it):
                # coming back would only repeat the error.
                self._count("failed")
                await self._delete(receipt)
            # Else a failure retrying may heal: left in the queue, received again
            # after the visibility timeout; the schedule's polls go on meanwhile.
            return
        if outcome == "unwatched":
            self._count("dropped")
        else:
            self._count("matched")
            if self._metrics is not None and event.time is not None:
                self._metrics.push_lag.observe(max(0.0, _seconds_since(event.time, self._clock)))
        await self._delete(receipt)
        log.debug("push.handled", arn=event.build_arn, outcome=outcome)

    async def _poll(self, build_arn: str, received_at: int) -> PollOutcome:
        """Poll the build now, adopting it first if a source wants it; "unwatched"
        when no source does (dropped). Raises the GetImage error of an adoption."""
        outcome = await self._engine.poll_now(build_arn, received_at=received_at)
        if outcome != "unwatched":
            return outcome
        source = self.sources.source_of(build_arn, None)
        if source is not None or self._follow_all:
            fetch = self._engine.fetch_number()
            await self._engine.adopt(source or "events", await self._get(build_arn), fetch)
            return "committed"
        if not self.sources.needs_snapshot(build_arn):
            return "unwatched"
        fetch = self._engine.fetch_number()
        snapshot = await self._get(build_arn)
        source = self.sources.source_of(build_arn, snapshot)
        if source is None:
            return "unwatched"
        await self._engine.adopt(source, snapshot, fetch)
        return "committed"

    async def _delete(self, receipt: object) -> None:
        if not isinstance(receipt, str):
            return
        try:
            await self._queue.delete(receipt)
        except ApiError as exc:  # it comes back after the visibility timeout: harmless
            log.warning("push.delete_failed", error=type(exc).__name__, message=str(exc))
            return
        log.debug("push.deleted", queue=self._queue.url)

    def _malformed(self, message: dict[str, Any], exc: MalformedMessage, note: str) -> None:
        log.warning(
            "push.malformed_message",
            queue=self._queue.url,
            message_id=message.get("MessageId"),
            problem=str(exc),
            note=note,
        )
        self._count("malformed")

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.push_events.labels(outcome).inc()


def _receive_count(message: dict[str, Any]) -> int:
    try:
        return int((message.get("Attributes") or {}).get("ApproximateReceiveCount", 1))
    except (TypeError, ValueError):
        return 1


def _seconds_since(then: datetime, clock: Clock) -> float:
    return (clock.now() - then).total_seconds() if then.tzinfo else math.nan


def visibility_for(max_tps: float) -> int:
    """Seconds a received batch stays hidden: time for its ten GetImage calls at
    `max_tps` behind a queue of other polls, four times over, and at least 30 s (our
    choice). Too short, and a slow batch is received twice (harmless, but a call
    more); too long, and a crash delays those events by as much."""
    return int(min(300, max(30, math.ceil(4 * MAX_MESSAGES / max_tps) + 10)))
