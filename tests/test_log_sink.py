"""The log sink: one line per transition, the event's fields as keys."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import structlog
from structlog.testing import capture_logs

from tests.test_event_schema import failed_with_context, in_testing_with_progress
from watcher.diagnostics import Diagnostics, FailedStep
from watcher.logs import configure
from watcher.model import Ami, ImageSnapshot, ImageStatus, Outputs
from watcher.sinks import LogSink
from watcher.sinks.log import event_fields
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


# ------------------------------------------------------------------- redaction
# `configure` puts `watcher.redaction` between every line and its renderer: the same
# guard as on the build log lines events carry, for what a caller cannot vouch for.


def _rendered(log_format: str, **fields: object) -> str:
    stream = io.StringIO()
    configure(stream, log_format=log_format)  # type: ignore[arg-type]
    try:
        structlog.get_logger("ibwatch").warning("image.poll_failed", **fields)
    finally:
        structlog.reset_defaults()
    return stream.getvalue()


def test_a_secret_in_a_logged_value_is_redacted_in_every_format() -> None:
    message = "GET https://deploy:SECRET-URL-PASSWORD@git.example failed: password=SECRET-PW-1"
    for log_format in ("json", "console", "human"):
        text = _rendered(log_format, message=message, arn=ARN)
        assert "SECRET-" not in text, log_format
        assert "https://deploy:[REDACTED]@git.example" in text
        assert "password=[REDACTED]" in text
        assert ARN.split(":image/")[1] in text, "the rest of the line is kept"


def test_the_value_of_a_key_that_names_a_secret_is_replaced_whole() -> None:
    record = json.loads(_rendered("json", api_token="SECRET-TOKEN-VALUE", token_count=3))
    assert record["api_token"] == "[REDACTED]"
    assert record["token_count"] == 3


def test_strings_inside_lists_dicts_and_exceptions_are_redacted() -> None:
    record = json.loads(
        _rendered(
            "json",
            lines=["ok", "whsec_SECRETSIGNINGKEY"],
            headers={"Authorization": "Bearer SECRET-BEARER", "Accept": "application/json"},
            error=ValueError("bad url https://u:SECRET-X@host"),
        )
    )
    assert record["lines"] == ["ok", "whsec_[REDACTED]"]
    assert record["headers"] == {"Authorization": "[REDACTED]", "Accept": "application/json"}
    assert record["error"] == "ValueError: bad url https://u:[REDACTED]@host"


def test_a_line_without_a_secret_renders_as_before() -> None:
    """Values with nothing to hide reach the renderer untouched (types included)."""
    record = json.loads(_rendered("json", status="FAILED", total_s=1.5, skipped=["TESTING"]))
    assert {k: record[k] for k in ("status", "total_s", "skipped")} == {
        "status": "FAILED",
        "total_s": 1.5,
        "skipped": ["TESTING"],
    }


def test_a_line_names_the_running_step_and_a_failure_its_step_and_log() -> None:
    testing = event_fields(in_testing_with_progress())
    assert testing["step"] == "test workflow, step 2/3 ApplyTestComponents (ExecuteComponents)"
    failed = failed_with_context()
    step = FailedStep(
        workflow="TEST",
        workflow_name="test-image",
        workflow_arn=None,
        workflow_execution_id=None,
        step_execution_id="step-1",
        name="RunImageTests",
        action="ExecuteComponents",
        message="exit status 1",
    )
    diagnostics = Diagnostics(
        failed_step=step,
        component_failure=None,
        distribution_error=None,
        region_failures=(),
        log_group="/aws/imagebuilder/web-base",
        log_stream="1.4.0/7",
        console_url=None,
    )
    fields = event_fields(failed.model_copy(update={"diagnostics": diagnostics}))
    assert fields["failed_workflow_step"] == "TEST/RunImageTests"
    assert fields["step_message"] == "exit status 1"
    assert fields["log"] == "/aws/imagebuilder/web-base 1.4.0/7"
    assert "step" not in fields
    assert "step" not in event_fields(failed)
