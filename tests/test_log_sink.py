"""The log sink: one line per transition, the event's fields as keys."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import structlog
from structlog.testing import capture_logs

from watcher.logs import configure
from watcher.model import Ami, ImageSnapshot, ImageStatus, Outputs
from watcher.sinks import LogSink
from watcher.tracker import observe

ARN = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0/7"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def snapshot(status: str, minutes: float, **extra: object) -> ImageSnapshot:
    return ImageSnapshot(
        arn=ARN,
        status=ImageStatus(status),
        name="web-base",
        version="1.4.0",
        build=7,
        created=T0,
        tests_enabled=True,  # as GetImage says: TESTING is then a stage it passed
        observed_at=T0 + timedelta(minutes=minutes),
        **extra,
    )  # type: ignore[arg-type]


def transition_to_available() -> object:
    tracked, _ = observe(ARN, None, snapshot("BUILDING", 1))
    amis = Outputs(
        amis=(
            Ami(region="us-east-1", image="ami-0a1b2c3d4e5f60718"),
            Ami(region="eu-west-1", image="ami-0b2c3d4e5f6071829"),
        )
    )
    _, [event] = observe(ARN, tracked, snapshot("AVAILABLE", 31, outputs=amis))
    return event


async def test_a_transition_is_one_line_with_its_fields_as_keys() -> None:
    with capture_logs() as logs:
        await LogSink().send(transition_to_available())  # type: ignore[arg-type]
    [line] = logs
    assert line["event"] == "image.state_changed"
    assert (
        line["summary"] == "web-base 1.4.0/7 BUILDING → AVAILABLE after 30m00s "
        "(passed TESTING, DISTRIBUTING) in 2 regions"
    )
    assert (line["previous"], line["status"], line["terminal"]) == ("BUILDING", "AVAILABLE", True)
    assert line["amis"] == {
        "us-east-1": "ami-0a1b2c3d4e5f60718",
        "eu-west-1": "ami-0b2c3d4e5f6071829",
    }
    assert (line["in_previous_status_s"], line["total_s"]) == (1800.0, 1860.0)


async def test_a_failure_carries_reason_and_failed_step() -> None:
    tracked, _ = observe(ARN, None, snapshot("BUILDING", 1))
    _, [event] = observe(
        ARN,
        tracked,
        snapshot(
            "FAILED",
            9,
            reason="tests failed",
            failure_context={"imageStatus": "TESTING", "failedStep": "RunImageTests"},
        ),
    )
    with capture_logs() as logs:
        await LogSink().send(event)
    assert (
        logs[0]["summary"] == "web-base 1.4.0/7 BUILDING → FAILED after 8m00s "
        "(passed TESTING) in TESTING: tests failed"
    )
    assert logs[0]["failed_step"] == "RunImageTests"


async def test_lines_are_json_when_the_stream_is_not_a_terminal() -> None:
    stream = io.StringIO()
    configure(stream)
    try:
        await LogSink().send(transition_to_available())  # type: ignore[arg-type]
    finally:
        structlog.reset_defaults()
    record = json.loads(stream.getvalue())
    assert (record["event"], record["level"], record["status"]) == (
        "image.state_changed",
        "info",
        "AVAILABLE",
    )
    assert record["timestamp"].endswith("Z")


async def test_lines_are_readable_console_lines_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    configure(stream)
    try:
        await LogSink().send(transition_to_available())  # type: ignore[arg-type]
    finally:
        structlog.reset_defaults()
    text = stream.getvalue()
    assert "image.state_changed" in text
    assert "\x1b[" in text, "coloured"
    assert not text.lstrip().startswith("{")
