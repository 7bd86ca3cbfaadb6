"""Reading the body of one SQS message that may announce an Image Builder state change.

Three shapes arrive (see tests/push_samples/ for each, with its source):

- an EventBridge event, sent to the queue by a rule's SQS target: the envelope of
  the EventBridge User Guide's "AWS service event metadata" page (`version`, `id`,
  `detail-type`, `source`, `account`, `time`, `region`, `resources`, `detail`) with
  `source` "aws.imagebuilder" and `detail-type` "EC2 Image Builder Image State
  Change" (EventBridge events reference, "EC2 Image Builder events"); the build is
  `resources[0]` and `detail` is `{"previous-state": {"status"}, "state": {"status",
  "reason"}}` (the event's schema, as the CDK's generated `EC2ImageBuilderImageStateChange`
  types show it);
- that event published to an SNS topic and delivered to the queue with raw message
  delivery off: the SNS notification JSON (`Type` "Notification", `MessageId`,
  `TopicArn`, `Message`, `Timestamp`, `SignatureVersion`, ...; SNS Developer Guide,
  "Fanout to Amazon SQS queues" and "HTTP/HTTPS notification JSON format") whose
  `Message` is the event as a JSON string;
- Image Builder's own SNS notification (the infrastructure configuration's
  `snsTopicArn`), whose `Message` is the image document, its `arn` the build ARN
  (Image Builder User Guide, "Amazon SNS integration in Image Builder", "SNS message
  format"); sent on AVAILABLE and FAILED only.

Pure: no I/O, no clock, stdlib and `watcher.model` only; it runs on every message
received. The status a message claims is carried for logs only and never trusted:
GetImage is the truth. It must never raise anything but `MalformedMessage`, whatever
the body holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from watcher.model import Arn, InvalidArn

__all__ = ["MalformedMessage", "PushEvent", "PushKind", "parse_message"]

SOURCE = "aws.imagebuilder"
DETAIL_TYPE = "EC2 Image Builder Image State Change"
"""EventBridge events reference, "EC2 Image Builder events": the `source` and
`detail-type` of the event Image Builder sends when an image's state changes."""

PushKind = Literal["eventbridge", "sns-eventbridge", "sns-imagebuilder"]

_SHOWN = 120
"""Characters of an offending value quoted in a reason: a message body can be 256 KiB."""


class MalformedMessage(ValueError):
    """A message that cannot be read as any of the shapes this module knows; `reason`
    names what was wrong, for the one log line the consumer writes."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class PushEvent:
    """What one message says: which build to poll now, and what it claims."""

    build_arn: str
    """The image build-version ARN (`.../NAME/1.2.3/4`), as `Arn` writes it."""
    status: str | None
    """The status the message says the build is in now, as sent; for logs only."""
    time: datetime | None
    """When the change happened (UTC): the EventBridge event's `time`; for Image
    Builder's own SNS message, the SNS `Timestamp` (the image document's own dates
    are in no documented format). None when the message carries none."""
    kind: PushKind
    event_id: str | None
    """The EventBridge event's `id` (the same on a duplicate delivery), else the SNS
    `MessageId`."""


def parse_message(body: str) -> PushEvent | None:
    """The state change `body` announces; None for a well-formed message that is no
    Image Builder state change (another source or detail-type, an SNS subscription
    confirmation, another publisher's JSON on the topic). Raises MalformedMessage for
    anything that cannot be read."""
    document = _json_object(body, "the message body")
    if "Type" in document:
        return _sns(document)
    if "source" in document or "detail-type" in document:
        return _eventbridge(document, "eventbridge", sns=None)
    if "arn" in document and "state" in document:
        raise MalformedMessage(
            "an Image Builder image document without its SNS envelope: the subscription "
            "has raw message delivery on; turn it off so the SNS notification arrives"
        )
    raise MalformedMessage(
        f"neither an EventBridge event nor an SNS notification (keys: {_keys(document)})"
    )


# -- SNS --------------------------------------------------------------------


def _sns(envelope: dict[str, Any]) -> PushEvent | None:
    kind = envelope["Type"]
    if not isinstance(kind, str):
        raise MalformedMessage(f"SNS message Type is not a string: {_show(kind)}")
    if kind != "Notification":
        # SubscriptionConfirmation, UnsubscribeConfirmation: SNS's own messages
        # (HTTP/HTTPS notification JSON format page), which announce no build.
        return None
    message = envelope.get("Message")
    if not isinstance(message, str):
        raise MalformedMessage("SNS notification without a Message string")
    published = _time(envelope, "Timestamp", "SNS notification")
    message_id = _optional_string(envelope, "MessageId", "SNS notification")
    inner = _json_object(message, "the SNS notification's Message")
    if "source" in inner or "detail-type" in inner:
        return _eventbridge(inner, "sns-eventbridge", sns=published)
    if "arn" in inner and "state" in inner:
        return _image_document(inner, published, message_id)
    # Another publisher's JSON on the same topic (our reading: a topic can be shared).
    return None


def _image_document(
    image: dict[str, Any], published: datetime | None, message_id: str | None
) -> PushEvent:
    """Image Builder's SNS message: the image, with `arn` (the build) and `state`."""
    arn = _build_arn(image["arn"], "the image document's arn")
    return PushEvent(
        build_arn=arn,
        status=_status(image.get("state"), "the image document's state"),
        time=published,
        kind="sns-imagebuilder",
        event_id=message_id,
    )


# -- EventBridge ------------------------------------------------------------


def _eventbridge(
    event: dict[str, Any], kind: PushKind, *, sns: datetime | None
) -> PushEvent | None:
    source = event.get("source")
    detail_type = event.get("detail-type")
    for name, value in (("source", source), ("detail-type", detail_type)):
        if not isinstance(value, str):
            raise MalformedMessage(
                f"EventBridge event without a {name} string"
                + ("" if value is None else f": {_show(value)}")
            )
    if source != SOURCE or detail_type != DETAIL_TYPE:
        return None
    resources = event.get("resources")
    if resources is None or resources == []:
        raise MalformedMessage("EventBridge event without resources")
    if not isinstance(resources, list):
        raise MalformedMessage(f"EventBridge event resources is not a list: {_show(resources)}")
    arn = _build_arn(resources[0], "resources[0]")
    detail = event.get("detail")
    if detail is not None and not isinstance(detail, dict):
        raise MalformedMessage(f"EventBridge event detail is not an object: {_show(detail)}")
    state = None if detail is None else detail.get("state")
    time = _time(event, "time", "EventBridge event")
    return PushEvent(
        build_arn=arn,
        status=_status(state, "detail.state"),
        # An event relayed by SNS: the event's own time is when the change happened;
        # the SNS Timestamp (when it was published) only if the event has none.
        time=time if time is not None else sns,
        kind=kind,
        event_id=_optional_string(event, "id", "EventBridge event"),
    )


# -- fields -----------------------------------------------------------------


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except (ValueError, TypeError) as exc:  # JSONDecodeError, and bytes that are no text
        raise MalformedMessage(f"{what} is not JSON: {exc}") from None
    except RecursionError:
        raise MalformedMessage(f"{what} is JSON nested too deeply to read") from None
    if not isinstance(document, dict):
        raise MalformedMessage(f"{what} is not a JSON object but {_json_type(document)}")
    return document


def _build_arn(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise MalformedMessage(f"{what} is not an image build ARN: {_show(value)}")
    try:
        arn = Arn.parse(value)
    except InvalidArn as exc:
        raise MalformedMessage(f"{what} is not an image build ARN: {_cut(str(exc))}") from None
    if not arn.is_build:
        raise MalformedMessage(
            f"{what} is not an image build ARN: {_show(value)} is a version ARN (no build number)"
        )
    return str(arn)


def _status(state: object, what: str) -> str | None:
    """`state.status` as sent: any string (AWS adds statuses), or None if absent."""
    if state is None:
        return None
    if not isinstance(state, dict):
        raise MalformedMessage(f"{what} is not an object: {_show(state)}")
    status = state.get("status")
    if status is not None and not isinstance(status, str):
        raise MalformedMessage(f"{what}.status is not a string: {_show(status)}")
    return status


def _time(document: dict[str, Any], key: str, what: str) -> datetime | None:
    """An ISO 8601 timestamp, as UTC; None if the key is absent. EventBridge's `time`
    (`2017-12-22T18:43:48Z`) and SNS's `Timestamp` (`2012-03-29T05:12:16.901Z`) are
    both UTC; one without an offset is read as UTC too (our reading)."""
    value = document.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedMessage(f"{what} {key} is not a string: {_show(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedMessage(
            f"{what} {key} is not an ISO 8601 timestamp: {_show(value)}"
        ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 has no UTC reading
        raise MalformedMessage(f"{what} {key} is out of range: {_show(value)}") from None


def _optional_string(document: dict[str, Any], key: str, what: str) -> str | None:
    value = document.get(key)
    if value is not None and not isinstance(value, str):
        raise MalformedMessage(f"{what} {key} is not a string: {_show(value)}")
    return value


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _keys(document: dict[str, Any]) -> str:
    return _cut(", ".join(sorted(document)) or "none")


def _show(value: object) -> str:
    return _cut(repr(value))


def _cut(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
