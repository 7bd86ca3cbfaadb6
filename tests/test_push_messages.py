"""Reading push messages: the three shapes AWS documents (tests/push_samples/, each
with its source in the README there), the messages that are well-formed but no
Image Builder state change, and every way a body can be unusable."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.push_messages import DETAIL_TYPE, SOURCE, MalformedMessage, PushEvent, parse_message

SAMPLES = Path(__file__).parent / "push_samples"
BUILD = "arn:aws:imagebuilder:us-east-1:123456789012:image/example-linux-image/1.0.0/3"
FAILED_BUILD = "arn:aws:imagebuilder:us-west-2:123456789012:image/my-example-image/1.0.0/7"


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def sample_json(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(sample(name))
    return document


def event(**changes: Any) -> dict[str, Any]:
    """The EventBridge sample, with top-level keys replaced (None removes one)."""
    document = sample_json("eventbridge-building.json")
    for key, value in changes.items():
        key = key.replace("_", "-")
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    return document


def via_sns(message: object, **changes: Any) -> str:
    """`message` (a document, or a string as is) in the SNS notification envelope."""
    envelope = sample_json("sns-eventbridge-failed.json")
    envelope["Message"] = message if isinstance(message, str) else json.dumps(message)
    for key, value in changes.items():
        if value is None:
            envelope.pop(key, None)
        else:
            envelope[key] = value
    return json.dumps(envelope)


def malformed(body: str) -> str:
    with pytest.raises(MalformedMessage) as raised:
        parse_message(body)
    assert raised.value.reason == str(raised.value)
    return raised.value.reason


# -- the documented shapes ----------------------------------------------------


def test_an_eventbridge_event_names_its_build_status_and_time() -> None:
    assert parse_message(sample("eventbridge-building.json")) == PushEvent(
        build_arn=BUILD,
        status="BUILDING",
        time=datetime(2024, 5, 14, 9, 12, 41, tzinfo=UTC),
        kind="eventbridge",
        event_id="3f2c8e5a-0b7d-4d1e-9a64-1c5e2b7f9d20",
    )


def test_a_failed_eventbridge_event_claims_failed() -> None:
    parsed = parse_message(sample("eventbridge-failed.json"))
    assert parsed is not None
    assert (parsed.build_arn, parsed.status, parsed.kind) == (FAILED_BUILD, "FAILED", "eventbridge")


def test_an_eventbridge_event_through_sns_keeps_the_events_own_time_and_id() -> None:
    """The event's `time` is when the change happened; SNS's Timestamp is a second later."""
    assert parse_message(sample("sns-eventbridge-failed.json")) == PushEvent(
        build_arn=FAILED_BUILD,
        status="FAILED",
        time=datetime(2024, 5, 14, 9, 48, 5, tzinfo=UTC),
        kind="sns-eventbridge",
        event_id="a4b6c8d0-1e2f-4a3b-8c5d-6e7f8091a2b3",
    )


def test_an_event_through_sns_without_a_time_takes_the_sns_timestamp() -> None:
    parsed = parse_message(via_sns(event(time=None)))
    assert parsed is not None
    assert parsed.time == datetime(2024, 5, 14, 9, 48, 6, 901000, tzinfo=UTC)


def test_image_builders_sns_message_on_available() -> None:
    assert parse_message(sample("sns-imagebuilder-available.json")) == PushEvent(
        build_arn="arn:aws:imagebuilder:us-west-1:123456789012:image/example-linux-image/1.0.0/3",
        status="AVAILABLE",
        time=datetime(2022, 7, 28, 1, 53, 47, 61000, tzinfo=UTC),
        kind="sns-imagebuilder",
        event_id="8f2d3a41-6c5e-5b7f-9a0b-1c2d3e4f5a6b",
    )


def test_image_builders_sns_message_on_failed() -> None:
    parsed = parse_message(sample("sns-imagebuilder-failed.json"))
    assert parsed is not None
    assert (parsed.build_arn, parsed.status, parsed.kind) == (
        FAILED_BUILD,
        "FAILED",
        "sns-imagebuilder",
    )
    assert parsed.time == datetime(2022, 7, 5, 19, 58, 2, 311000, tzinfo=UTC)


def test_a_status_aws_adds_later_is_carried_as_sent() -> None:
    parsed = parse_message(json.dumps(event(detail={"state": {"status": "QUEUED_FOR_SCAN"}})))
    assert parsed is not None
    assert parsed.status == "QUEUED_FOR_SCAN"


def test_an_event_without_detail_still_names_its_build() -> None:
    """The status is only logged; the build ARN is what the consumer needs."""
    parsed = parse_message(json.dumps(event(detail=None)))
    assert parsed is not None
    assert (parsed.build_arn, parsed.status) == (BUILD, None)


def test_only_the_first_resource_is_read() -> None:
    other = "arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/nightly"
    parsed = parse_message(json.dumps(event(resources=[BUILD, other])))
    assert parsed is not None
    assert parsed.build_arn == BUILD


def test_a_time_with_an_offset_is_read_as_utc() -> None:
    parsed = parse_message(json.dumps(event(time="2024-05-14T11:12:41+02:00")))
    assert parsed is not None
    assert parsed.time == datetime(2024, 5, 14, 9, 12, 41, tzinfo=UTC)


def test_every_time_read_is_timezone_aware() -> None:
    parsed = parse_message(json.dumps(event(time="2024-05-14T09:12:41")))
    assert parsed is not None
    assert parsed.time is not None
    assert parsed.time.utcoffset() is not None


# -- well-formed, but no Image Builder state change -----------------------------


@pytest.mark.parametrize(
    ("source", "detail_type"),
    [
        ("aws.ec2", "EC2 AMI State Change"),
        (SOURCE, "EC2 Image Builder CVE Detected"),
        (SOURCE, "EC2 Image Builder Workflow Step Waiting"),
        (SOURCE, "EC2 Image Builder Image Pipeline Automatically Disabled"),
        ("aws.imagebuilder.custom", DETAIL_TYPE),
        ("my.application", "Something Happened"),
    ],
)
def test_another_source_or_detail_type_is_none(source: str, detail_type: str) -> None:
    document = event(source=source, detail_type=detail_type, resources=[])
    assert parse_message(json.dumps(document)) is None
    assert parse_message(via_sns(document)) is None


def test_an_sns_subscription_confirmation_is_none() -> None:
    assert parse_message(sample("sns-subscription-confirmation.json")) is None


def test_another_publishers_json_on_the_topic_is_none() -> None:
    assert parse_message(via_sns({"AlarmName": "cpu-high", "NewStateValue": "ALARM"})) is None


# -- malformed ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("", "the message body is not JSON"),
        ("{", "the message body is not JSON"),
        ("hello world", "the message body is not JSON"),
        ("[1, 2]", "the message body is not a JSON object but a list"),
        ('"text"', "the message body is not a JSON object but a string"),
        ("null", "the message body is not a JSON object but null"),
        ("42", "the message body is not a JSON object but a number"),
        ("{}", "neither an EventBridge event nor an SNS notification (keys: none)"),
        ('{"hello": 1}', "neither an EventBridge event nor an SNS notification (keys: hello)"),
        ("[" * 100_000 + "]" * 100_000, "the message body is JSON nested too deeply to read"),
    ],
)
def test_a_body_that_is_no_json_object_is_malformed(body: str, reason: str) -> None:
    assert malformed(body).startswith(reason)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"resources": None}, "EventBridge event without resources"),
        ({"resources": []}, "EventBridge event without resources"),
        ({"resources": "arn"}, "EventBridge event resources is not a list: 'arn'"),
        ({"resources": [7]}, "resources[0] is not an image build ARN: 7"),
        ({"resources": [None]}, "resources[0] is not an image build ARN: None"),
        (
            {"resources": ["i-0abc"]},
            "resources[0] is not an image build ARN: 'i-0abc' is not an ARN",
        ),
        (
            {"resources": ["arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/nightly"]},
            "resources[0] is not an image build ARN: "
            "'arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/nightly' is an "
            "image pipeline ARN, not an image ARN",
        ),
        ({"source": None}, "EventBridge event without a source string"),
        ({"source": 3}, "EventBridge event without a source string: 3"),
        ({"detail_type": None}, "EventBridge event without a detail-type string"),
        ({"detail_type": ["x"]}, "EventBridge event without a detail-type string: ['x']"),
        ({"detail": "BUILDING"}, "EventBridge event detail is not an object: 'BUILDING'"),
        ({"detail": {"state": "BUILDING"}}, "detail.state is not an object: 'BUILDING'"),
        ({"detail": {"state": {"status": 1}}}, "detail.state.status is not a string: 1"),
        ({"time": "yesterday"}, "EventBridge event time is not an ISO 8601 timestamp: 'yesterday'"),
        ({"time": 1715677961}, "EventBridge event time is not a string: 1715677961"),
        ({"id": 12}, "EventBridge event id is not a string: 12"),
    ],
)
def test_an_unusable_image_builder_event_is_malformed(changes: dict[str, Any], reason: str) -> None:
    document = event()
    for key, value in changes.items():
        key = key.replace("_", "-")
        if value is None:
            document.pop(key)
        else:
            document[key] = value
    assert malformed(json.dumps(document)).startswith(reason)


def test_a_version_arn_in_resources_is_malformed() -> None:
    """GetImage would answer for a version ARN with its newest AVAILABLE build only,
    never the one that changed: a state change names a build, or it is unusable."""
    version = BUILD.rsplit("/", 1)[0]
    reason = malformed(json.dumps(event(resources=[version])))
    assert reason == (
        f"resources[0] is not an image build ARN: {version!r} is a version ARN (no build number)"
    )


def test_a_wildcard_version_arn_in_resources_is_malformed() -> None:
    wildcard = "arn:aws:imagebuilder:us-east-1:123456789012:image/example-linux-image/1.x.x"
    assert "is a version ARN" in malformed(json.dumps(event(resources=[wildcard])))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (via_sns("Hello world!"), "the SNS notification's Message is not JSON"),
        (via_sns("[1]"), "the SNS notification's Message is not a JSON object but a list"),
        (via_sns({}, Message=None), "SNS notification without a Message string"),
        (json.dumps({"Type": "Notification", "Message": 5}), "SNS notification without a Message"),
        (json.dumps({"Type": 1}), "SNS message Type is not a string: 1"),
        (via_sns(event(), Timestamp="soon"), "SNS notification Timestamp is not an ISO 8601"),
        (via_sns(event(), MessageId=5), "SNS notification MessageId is not a string: 5"),
        (via_sns(event(resources=[])), "EventBridge event without resources"),
        (
            via_sns({"arn": BUILD.rsplit("/", 1)[0], "state": {"status": "AVAILABLE"}}),
            "the image document's arn is not an image build ARN",
        ),
        (
            via_sns({"arn": 3, "state": {"status": "AVAILABLE"}}),
            "the image document's arn is not an image build ARN: 3",
        ),
        (
            via_sns({"arn": BUILD, "state": "AVAILABLE"}),
            "the image document's state is not an object: 'AVAILABLE'",
        ),
    ],
)
def test_an_unusable_sns_notification_is_malformed(body: str, reason: str) -> None:
    assert malformed(body).startswith(reason)


def test_an_image_document_without_its_sns_envelope_says_raw_delivery_is_on() -> None:
    document = json.loads(sample_json("sns-imagebuilder-available.json")["Message"])
    assert "raw message delivery on" in malformed(json.dumps(document))


def test_a_long_offending_value_is_cut_in_the_reason() -> None:
    reason = malformed(json.dumps(event(resources=["x" * 10_000])))
    assert len(reason) < 300


# -- never anything but MalformedMessage ----------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
_DELETE = object()
_VALUES = st.one_of(
    st.just(_DELETE),
    _JSON,
    st.sampled_from(
        [
            SOURCE,
            DETAIL_TYPE,
            "Notification",
            BUILD,
            BUILD.rsplit("/", 1)[0],
            [BUILD],
            [],
            "2024-05-14T09:12:41Z",
            "0001-01-01T00:00:00+01:00",
            {"status": "FAILED"},
        ]
    ),
)
_EVENT_PATHS = st.sampled_from(
    [
        ("version",),
        ("id",),
        ("detail-type",),
        ("source",),
        ("time",),
        ("resources",),
        ("resources", 0),
        ("detail",),
        ("detail", "state"),
        ("detail", "state", "status"),
        ("detail", "previous-state"),
    ]
)
_SNS_PATHS = st.sampled_from([("Type",), ("MessageId",), ("Message",), ("Timestamp",)])
_IMAGE_PATHS = st.sampled_from([("arn",), ("state",), ("state", "status"), ("name",)])


def _mutated(document: dict[str, Any], changes: list[tuple[tuple[str | int, ...], object]]) -> Any:
    """`document` with each (path, value) change made where the path still leads
    somewhere; `_DELETE` removes the key."""
    document = json.loads(json.dumps(document))
    for path, value in changes:
        *parents, last = path
        node: Any = document
        for key in parents:
            try:
                node = node[key]
            except (KeyError, IndexError, TypeError):
                break
        else:
            try:
                if value is _DELETE:
                    del node[last]
                else:
                    # A copy: `_VALUES` samples the same list and dict objects every
                    # time, and a later change made inside one (at ("resources", 0),
                    # say) would alter the sample itself, or put a list inside itself.
                    node[last] = copy.deepcopy(value)
            except (KeyError, IndexError, TypeError):
                pass
    return document


def _changes(paths: st.SearchStrategy[tuple[str | int, ...]]) -> Any:
    return st.lists(st.tuples(paths, _VALUES), max_size=3)


@st.composite
def _bodies(draw: st.DrawFn) -> str:
    """A documented sample with a few of its fields removed or replaced by anything:
    every branch of the reader, the happy ones included, gets reached."""
    shape = draw(st.sampled_from(["eventbridge", "sns-eventbridge", "sns-imagebuilder"]))
    if shape == "sns-imagebuilder":
        envelope = sample_json("sns-imagebuilder-available.json")
        inner = _mutated(json.loads(envelope["Message"]), draw(_changes(_IMAGE_PATHS)))
    else:
        envelope = sample_json("sns-eventbridge-failed.json")
        inner = _mutated(sample_json("eventbridge-building.json"), draw(_changes(_EVENT_PATHS)))
    if shape == "eventbridge":
        return json.dumps(inner)
    envelope["Message"] = json.dumps(inner)
    return json.dumps(_mutated(envelope, draw(_changes(_SNS_PATHS))))


def _parses_or_is_malformed(body: str) -> None:
    try:
        parsed = parse_message(body)
    except MalformedMessage as exc:
        reason = exc.reason
        assert reason, "a malformed message always says why"
        return
    assert parsed is None or isinstance(parsed, PushEvent)
    if parsed is not None:
        assert parsed.build_arn.startswith("arn:")
        assert parsed.time is None or parsed.time.tzinfo is not None


@settings(max_examples=300)
@given(st.text())
def test_any_text_parses_or_is_malformed(body: str) -> None:
    _parses_or_is_malformed(body)


@settings(max_examples=300)
@given(_JSON)
def test_any_json_parses_or_is_malformed(document: object) -> None:
    _parses_or_is_malformed(json.dumps(document))


@settings(max_examples=500)
@given(_bodies())
def test_any_damaged_sample_parses_or_is_malformed(body: str) -> None:
    _parses_or_is_malformed(body)
