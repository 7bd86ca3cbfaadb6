"""`[events]`: the push fast path. Image Builder's state-change events reach an SQS
queue (EventBridge, or SNS); each one makes the daemon poll that build at once, and
polling at `safety_interval` stays the net for events lost on the way."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from watcher.config._base import PositiveDuration, Strict

# Queue URLs as SQS gives them: https://sqs.<region>.amazonaws.com/<account>/<name>
# (and the legacy https://<region>.queue.amazonaws.com/...); the path is what names
# the queue. Any other host is taken as a stand-in (moto, LocalStack, a VPC endpoint).
_SQS_HOST = re.compile(
    r"^(?:sqs\.(?P<a>[a-z0-9-]+)|(?P<b>[a-z0-9-]+)\.queue)\.amazonaws\.com(\.cn)?$"
)
_EXAMPLE = "https://sqs.us-east-1.amazonaws.com/123456789012/ibwatch-events"


def queue_region(queue_url: str) -> str | None:
    """The region an SQS queue URL names in its host, if it names one."""
    found = _SQS_HOST.match(urlsplit(queue_url).hostname or "")
    return (found.group("a") or found.group("b")) if found else None


class EventsConfig(Strict):
    """Where push events come from, and how much polling stays as the safety net."""

    queue_url: str | None = None
    """The SQS queue (`deploy/events/` creates one wired to EventBridge). None: no push."""
    follow_all: bool = False
    """Watch every build an event names, not only those of watched ARNs, versions and
    pipelines (the others are dropped and counted)."""
    safety_interval: PositiveDuration = 600.0
    """While the queue answers, builds in progress are also polled this often, since
    events are best effort; when it does not, the status intervals apply again."""
    wait_time: int = Field(default=20, ge=1, le=20)
    """Seconds one ReceiveMessage waits for a message (SQS long polling, at most 20)."""
    malformed: Literal["delete", "keep"] = "delete"
    """A message that is no Image Builder event is logged once and counted, then
    deleted; `keep` leaves it, so that the queue's redrive policy moves it to its
    dead-letter queue for inspection (refused, with an error, on a queue without one)."""
    visibility_timeout: int | None = Field(default=None, ge=1, le=43200)
    """Seconds a received message stays hidden while it is handled; a message not
    deleted by then (the daemon died before its poll was committed) is received
    again. None: sized to the work from `watch.max_tps` (30 s to 5 min)."""

    @field_validator("queue_url")
    @classmethod
    def _queue_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        path = [p for p in parts.path.split("/") if p]
        if parts.scheme not in ("http", "https") or not parts.hostname or len(path) != 2:
            raise ValueError(
                f"{value!r} is not an SQS queue URL; expected one like {_EXAMPLE} "
                "(the QueueUrl output of deploy/events/)"
            )
        return value
