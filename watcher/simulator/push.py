"""The simulator's push: an EventBridge-shaped "EC2 Image Builder Image State Change"
event sent to an SQS queue for every status change of every build, as scenario time
reaches it, as an EventBridge rule with an SQS target would deliver it.

The event is the envelope of the EventBridge User Guide's "AWS service event
metadata" (`version` "0", `id` a version 4 UUID, `detail-type`, `source`, `account`,
`time`, `region`, `resources`, `detail`), with what the EventBridge events reference
("EC2 Image Builder events") and the event's schema give Image Builder's: `source`
"aws.imagebuilder", the build ARN as `resources[0]`, `detail` `{"previous-state":
{"status"}, "state": {"status", "reason"}}`. Our reading where AWS documents nothing:
a build's first status is sent without `previous-state`, and `time` is the moment the
status began (what GetImage's dates put it at), to the second.

EventBridge delivers "best effort": `[events]` makes a seeded share of the messages
go missing, arrive twice, or arrive after the next one. Deterministic: every change
draws the same four values from one generator seeded by the scenario's seed, so the
same seed and the same builds give the same messages, ids included.

`EventStream` decides (pure); `Pusher` sends, on the injected clock: the messages
due together go out in SendMessageBatch calls of up to ten (botocore's sqs model:
"send up to 10 messages", each entry's result "reported individually", so a call
that answers 200 can still fail some entries), in order. A send that fails is
logged and counted, never raised: the endpoint keeps serving.
"""

from __future__ import annotations

import json
import os
import random
import re
import uuid
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import anyio
import botocore.exceptions
import structlog
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from watcher.simulator.catalog import Build, Catalog
from watcher.simulator.scenario import Events
from watcher.simulator.world import World

__all__ = [
    "DETAIL_TYPE",
    "SOURCE",
    "Change",
    "EventStream",
    "Outgoing",
    "PushCounters",
    "Pusher",
    "check_queue_url",
    "event_document",
    "sqs_endpoint",
    "sqs_region",
    "status_changes",
]

log = structlog.get_logger("ibwatch")

SOURCE = "aws.imagebuilder"
DETAIL_TYPE = "EC2 Image Builder Image State Change"
"""EventBridge events reference, "EC2 Image Builder events"."""

MAX_BATCH = 10
"""SendMessageBatch's entries at most (botocore's sqs model)."""

RECHECK = 1.0
"""Real seconds between looks at the account while no change is known to be due:
builds started over the API or in-process can appear at any moment."""

PLACEHOLDER_KEY = ("SIMULATORACCESSKEY", "simulator-secret-for-a-local-sqs")
"""Signing credentials when none are configured: a local SQS (moto, ElasticMQ,
LocalStack) takes any, as the simulator itself does; a real queue refuses them with
an error naming the key, which the log line shows."""

# The hosts of AWS's SQS endpoints and queue URLs: sqs.REGION.amazonaws.com (and
# .amazonaws.com.cn, VPC endpoints' vpce-...sqs.REGION.vpce.amazonaws.com) and the
# legacy REGION.queue.amazonaws.com ("Amazon SQS queue and message identifiers",
# the general reference's SQS endpoints); queue.amazonaws.com is us-east-1's.
_REGION_IN_HOST = re.compile(
    r"(?:^|\.)sqs\.(?P<a>[a-z]{2}(?:-[a-z]+)+-[0-9]+)\.|^(?P<b>[a-z]{2}(?:-[a-z]+)+-[0-9]+)\.queue\."
)


# -- where to send ------------------------------------------------------------


def check_queue_url(text: str) -> str:
    """`text` if it reads as an SQS queue URL (http(s), a host, the queue's path);
    else a ValueError saying what one looks like."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path in ("", "/"):
        raise ValueError(
            "expected an SQS queue URL like "
            f"'https://sqs.us-east-1.amazonaws.com/123456789012/image-events', got {text!r}"
        )
    return text


def sqs_endpoint(queue_url: str, environ: Mapping[str, str] | None = None) -> str:
    """The endpoint SendMessageBatch goes to: `AWS_ENDPOINT_URL_SQS` if set, else the queue
    URL's own scheme and host.

    botocore does not send a request to the QueueUrl's host: SQS is a json-protocol
    service posting every operation to `/` of the client's endpoint, and neither the
    model nor its endpoint rules read QueueUrl (its endpoint parameters are Region,
    UseDualStack, UseFIPS and Endpoint only; boto3 issue #677: no SQS customisation
    overrides the endpoint). A queue on a local SQS would otherwise be looked for on
    AWS's regional endpoint, so the queue URL's host is the endpoint unless the
    service-specific variable botocore documents says otherwise.
    """
    configured = (os.environ if environ is None else environ).get("AWS_ENDPOINT_URL_SQS")
    if configured:
        return configured
    parts = urlsplit(queue_url)
    return f"{parts.scheme}://{parts.netloc}"


def sqs_region(queue_url: str) -> str | None:
    """The Region an AWS queue URL names in its host; None for another host (a local
    SQS), where the configured Region (AWS_REGION, AWS_DEFAULT_REGION) applies."""
    host = urlsplit(queue_url).hostname or ""
    if host in ("queue.amazonaws.com", "sqs.amazonaws.com"):
        return "us-east-1"
    found = _REGION_IN_HOST.search(host)
    return None if found is None else found["a"] or found["b"]


# -- what to send -------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One status change of one build, at a scenario time."""

    at: float
    build: Build
    index: int
    """The timeline phase the build entered."""
    previous: str | None
    status: str
    reason: str | None


def status_changes(
    catalog: Catalog, now: float, told: set[tuple[str, int, str, float]], last: dict[str, str]
) -> list[Change]:
    """Every status change up to scenario time `now` not in `told`, in time order;
    `told` and `last` (each build's last status told) are brought up to date.

    A phase that lasts no time is never shown (GetImage passes over it), and a step
    with the status of the one before is no change.
    """
    found: list[tuple[float, float, str, int, Change]] = []
    for build in catalog:
        if build.started > now:
            continue
        for phase in build.phases:
            if phase.begins > now:
                break
            if phase.ends is not None and phase.ends <= phase.begins:
                continue
            key = (build.arn, phase.index, phase.status, phase.begins)
            if key in told:
                continue
            told.add(key)
            previous = last.get(build.arn)
            if previous == phase.status:
                continue
            last[build.arn] = phase.status
            change = Change(
                phase.begins, build, phase.index, previous, phase.status, phase.step.reason
            )
            found.append((phase.begins, build.started, build.arn, phase.index, change))
    return [entry[-1] for entry in sorted(found, key=lambda entry: entry[:4])]


def event_document(change: Change, event_id: str, when: datetime) -> dict[str, Any]:
    """The EventBridge event for `change`, as an SQS target delivers it."""
    parts = change.build.image.parts
    state: dict[str, str] = {"status": change.status}
    if change.reason:
        state["reason"] = change.reason
    detail: dict[str, Any] = {}
    if change.previous is not None:
        detail["previous-state"] = {"status": change.previous}
    detail["state"] = state
    return {
        "version": "0",
        "id": event_id,
        "detail-type": DETAIL_TYPE,
        "source": SOURCE,
        "account": parts["account"],
        # EventBridge's own format, to the second: 2017-12-22T18:43:48Z.
        "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": parts["region"],
        "resources": [change.build.arn],
        "detail": detail,
    }


@dataclass(frozen=True)
class Outgoing:
    """One SQS message to send: the change, its event id, and the copy (1 or 2)."""

    change: Change
    event_id: str
    copy: int = 1


@dataclass
class PushCounters:
    """What the pusher did, readable in-process (`Simulator.push_counters`).

    `changes` status changes seen; `dropped` of them never sent (`loss`);
    `duplicated` sent twice; `reordered` sent after a later one; `sent` messages SQS
    accepted (a duplicate counts twice); `failed` messages it did not accept (every
    entry of a SendMessageBatch call that failed, or an entry it answered as failed);
    `requests` SendMessageBatch calls made. So the queue receives `sent` = (changes -
    dropped + duplicated) - failed messages, once nothing is held back.
    """

    changes: int = 0
    sent: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    failed: int = 0
    held: int = 0
    """Changes held back right now, waiting for the next one to pass them."""
    requests: int = 0
    late: list[tuple[float, float]] = field(default_factory=list)
    """For each message SQS accepted, in send order: the scenario time of its change,
    and the seconds from that change to SQS's answer, on the simulator's clock (how
    late the event reached the queue: held back, waiting its turn, or a slow SQS)."""


class EventStream:
    """Which changes become messages, and in what order. Pure and seeded."""

    def __init__(self, events: Events, seed: int, counters: PushCounters) -> None:
        self._events = events
        # A generator of its own: pushing never shifts the fault plan's draws.
        self._random = random.Random(f"ibwatch-simulator-events/{seed}")
        self._counters = counters
        self._held: list[Outgoing] = []

    def offer(self, change: Change) -> list[Outgoing]:
        """The messages to send now that `change` happened, in order."""
        self._counters.changes += 1
        # Always four draws, whatever the outcome, to keep the sequence aligned.
        event_id = str(uuid.UUID(int=self._random.getrandbits(128), version=4))
        lost, twice, late = (self._random.random() for _ in range(3))
        if lost < self._events.loss:
            self._counters.dropped += 1
            return []
        copies = [Outgoing(change, event_id)]
        if twice < self._events.duplicates:
            self._counters.duplicated += 1
            copies.append(Outgoing(change, event_id, copy=2))
        if late < self._events.reorder and not self._held:
            # Held back until the next message goes out (one at a time: two held
            # together would only swap places with each other).
            self._held = copies
            self._counters.held = 1
            return []
        out, passed = copies + self._held, bool(self._held)
        if passed:
            self._counters.reordered += 1
        self._held, self._counters.held = [], 0
        return out

    def flush(self) -> list[Outgoing]:
        """What is held back, once no later change is known to come: sent late, but
        passed by nothing, so not counted as reordered."""
        out, self._held, self._counters.held = self._held, [], 0
        return out


# -- sending --------------------------------------------------------------------


class Pusher:
    """Sends the stream's messages to the queue as scenario time passes.

    An async context manager owning the SQS client: `run` pushes until cancelled;
    leaving the context pushes what is due by then, held messages included, so a
    simulator that stops has sent every change up to that moment.
    """

    def __init__(
        self,
        queue_url: str,
        world: World,
        stream: EventStream,
        counters: PushCounters,
        *,
        wall: Callable[[float], datetime],
        session: AioSession | None = None,
    ) -> None:
        self.queue_url = check_queue_url(queue_url)
        self._world = world
        self._stream = stream
        self._counters = counters
        self._wall = wall
        self._session = session or AioSession()
        self._stack = AsyncExitStack()
        self._sqs: Any = None
        self._told: set[tuple[str, int, str, float]] = set()
        self._last: dict[str, str] = {}
        self._errors: set[str] = set()

    async def __aenter__(self) -> Pusher:
        self._sqs = await self._stack.enter_async_context(await self._client())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            # Shielded: the simulator is often stopped by a cancellation (SIGINT, the
            # end of a test's task group). The client's timeouts bound the wait.
            with anyio.CancelScope(shield=True):
                await self.push_due(final=True)
        finally:
            await self._stack.aclose()

    async def run(self) -> None:
        """Push each change as its moment comes, until cancelled."""
        while True:
            # Shielded: a change taken from the account is sent before a cancellation
            # lands, or it would be lost for good (it counts as told).
            with anyio.CancelScope(shield=True):
                now = await self.push_due()
            upcoming = self._world.account.next_change_after(now)
            if upcoming is None:
                wait = RECHECK
            else:
                due = self._world.started + upcoming / self._world.time_scale
                wait = due - self._world.clock.monotonic()
            # At least a moment, so float rounding at a boundary cannot spin the loop.
            await self._world.clock.sleep(min(max(wait, 0.001), RECHECK))

    async def push_due(self, *, final: bool = False) -> float:
        """Send every change up to now not sent yet; with `final`, or once no later
        change is known to come, what is held back too. Returns the scenario time."""
        now = self._world.now()
        changes = status_changes(self._world.account.catalog, now, self._told, self._last)
        due = [outgoing for change in changes for outgoing in self._stream.offer(change)]
        if final or self._world.account.next_change_after(now) is None:
            due += self._stream.flush()
        for first in range(0, len(due), MAX_BATCH):
            await self._send(due[first : first + MAX_BATCH])
        return now

    async def _client(self) -> Any:
        credentials = await self._session.get_credentials()
        if credentials is None:
            log.info(
                "simulator.events_placeholder_credentials",
                queue=self.queue_url,
                note="no AWS credentials configured; signing with placeholders (a local SQS "
                "takes any)",
            )
            self._session.set_credentials(*PLACEHOLDER_KEY)
        region = sqs_region(self.queue_url) or self._session.get_config_variable("region")
        return self._session.create_client(
            "sqs",
            region_name=region or "us-east-1",
            endpoint_url=sqs_endpoint(self.queue_url),
            # One attempt: a message that cannot be sent is lost, as EventBridge can
            # lose one, and botocore's own retries would sleep off our clock.
            config=AioConfig(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=10),
        )

    async def _send(self, batch: list[Outgoing]) -> None:
        """One SendMessageBatch of `batch` (at most MAX_BATCH), in order."""
        entries = [
            {
                "Id": str(n),  # unique within the call, as the model asks
                "MessageBody": json.dumps(
                    event_document(o.change, o.event_id, self._wall(o.change.at))
                ),
            }
            for n, o in enumerate(batch)
        ]
        self._counters.requests += 1
        try:
            answer = await self._sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except (
            botocore.exceptions.ClientError,
            botocore.exceptions.BotoCoreError,
            aiohttp.ClientError,
            OSError,
            TimeoutError,
        ) as exc:
            self._failed(len(batch), f"{type(exc).__name__}: {exc}")
            return
        answered = self._world.clock.monotonic()
        refused = {entry.get("Id"): entry for entry in answer.get("Failed") or []}
        for n, outgoing in enumerate(batch):
            entry = refused.get(str(n))
            if entry is not None:
                self._failed(1, f"{entry.get('Code')}: {entry.get('Message')}")
                continue
            self._counters.sent += 1
            happened = self._world.started + outgoing.change.at / self._world.time_scale
            self._counters.late.append((outgoing.change.at, answered - happened))

    def _failed(self, messages: int, problem: str) -> None:
        self._counters.failed += messages
        if problem not in self._errors:  # once per kind of failure, not per message
            self._errors.add(problem)
            log.warning(
                "simulator.events_send_failed",
                queue=self.queue_url,
                problem=problem,
                note="the event is lost, as EventBridge can lose one; serving goes on",
            )
