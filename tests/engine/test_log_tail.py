"""The last lines of a failed build's log in its FAILED event's diagnostics: read
from CloudWatch Logs (GetLogEvents from the end of the stream, in the build ARN's
Region), redacted, at most `log_lines` of them, and best effort. Against the
simulator over loopback, on virtual time.

Model facts relied on (botocore's logs/2014-03-28 service-2.json): GetLogEvents takes
logGroupName, logStreamName, limit and startFromHead ("If the value is false, the
latest log events are returned first"); nextBackwardToken pages back, and "If you
have reached the end of the stream, it returns the same token you passed in".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from jsonschema import Draft202012Validator
from structlog.testing import capture_logs

from tests.engine.test_diagnostics import AGENT, failed_events, windows_agent
from tests.engine.test_engine_simulator import watch
from tests.simulator.helpers import logs
from watcher.aws import AwsImageSource, _log_page
from watcher.diagnostics import MAX_LINE, gather, tail_lines
from watcher.errors import NotFound
from watcher.redaction import MARK
from watcher.schema import event_schema
from watcher.simulator import Scenario, Simulator
from watcher.testing import FakeClock

T = TypeVar("T")

GROUP = "/aws/imagebuilder/windows-agent"
STREAM = "3.1.0/12"
STEP_MESSAGE = (
    "Component agent-smoke-test/1.0.2 failed in phase 'test', step 'RunTests' "
    "(ExecutePowerShell), exit code 1: Test-AgentService: service 'ibagent' did not "
    "reach Running within 120s"
)
# The last five lines of the demo's windows-agent build, which fails in TESTING: three
# of its scenario `log` lines (one with a password, on purpose), the failing step's
# line and the FAILED status's.
LAST_FIVE = (
    "Stderr: Test-AgentService: service 'ibagent' is StartPending after 60s",
    f"Stderr: agent.conf: server=https://agents.corp.example:8443 password={MARK}",
    "Stderr: Test-AgentService: service 'ibagent' did not reach Running within 120s",
    f"Step 2/3 RunImageTests (ExecuteComponents) failed: {STEP_MESSAGE}",
    "Image status: FAILED: Image testing failed: component 'agent-smoke-test' "
    "step 'RunTests' exited with code 1",
)


def logs_outage(code: str) -> dict[str, object]:
    """Every GetLogEvents answered with `code`, for all the scenario time a test runs."""
    return {"code": code, "end": "1000d", "operations": ["GetLogEvents"]}


def agent_with_logs_outage(code: str) -> Scenario:
    return windows_agent(faults={"outages": [logs_outage(code)]})


async def whole_log() -> list[str]:
    """Every line of the windows-agent build's log, as the unmodified aiobotocore
    `logs` client reads it once the build has ended."""
    clock = FakeClock()
    simulator = Simulator(windows_agent(), clock=clock)
    async with simulator as url, logs(url, region="eu-west-1") as client:
        clock.advance(simulator.settled_at() + 1 - clock.monotonic())
        response = await client.get_log_events(
            logGroupName=GROUP, logStreamName=STREAM, startFromHead=True
        )
    return [event["message"] for event in response["events"]]


async def test_a_build_failing_in_testing_carries_its_last_five_log_lines_redacted() -> None:
    """The build is in eu-west-1 and the simulator keeps its log there only: the
    lines come from a `logs` client of the build ARN's Region."""
    _, sink, simulator = await watch(windows_agent(), [AGENT], interval=30.0, log_lines=5)
    (failed,) = failed_events(sink)
    assert failed.diagnostics is not None
    assert failed.diagnostics.log_tail == LAST_FIVE
    assert failed.diagnostics.failed_step is not None, "the step is still there"
    assert simulator.counters.requests["GetLogEvents"] == 1
    assert all(e.diagnostics is None for e in sink.events if e is not failed)


async def test_the_tail_is_the_end_of_the_stream_read_by_any_client() -> None:
    everything = await whole_log()
    assert len(everything) > 5
    assert [line.replace("SECRET-DEMO-AGENT-PASSWORD", MARK) for line in everything[-5:]] == list(
        LAST_FIVE
    )


async def test_more_lines_asked_than_the_stream_holds_returns_every_line() -> None:
    """A short page does not prove the stream's start (the model): one more call,
    answered with no events and the same token, does."""
    everything = await whole_log()
    _, sink, simulator = await watch(windows_agent(), [AGENT], interval=30.0, log_lines=1000)
    (failed,) = failed_events(sink)
    assert failed.diagnostics is not None
    tail = failed.diagnostics.log_tail
    assert tail is not None
    assert len(tail) == len(everything)
    assert tail[0] == "Image status: PENDING"
    assert tail[-5:] == LAST_FIVE
    assert simulator.counters.requests["GetLogEvents"] == 2


async def test_log_lines_0_reads_no_log() -> None:
    _, sink, simulator = await watch(windows_agent(), [AGENT], interval=30.0)
    (failed,) = failed_events(sink)
    assert failed.diagnostics is not None
    assert failed.diagnostics.log_tail is None
    assert simulator.counters.requests["GetLogEvents"] == 0


async def test_a_denied_log_read_leaves_the_tail_out_with_one_warning() -> None:
    """A policy without logs:GetLogEvents: the FAILED event still comes with the rest
    of its diagnostics, the watch ends normally, and the warning names the action and
    the log group it is needed on. Access denied is not retried."""
    with capture_logs() as captured:
        result, sink, simulator = await watch(
            agent_with_logs_outage("AccessDeniedException"), [AGENT], interval=30.0, log_lines=5
        )
    (failed,) = failed_events(sink)
    assert failed.diagnostics is not None
    assert failed.diagnostics.log_tail is None
    assert failed.diagnostics.failed_step is not None
    assert failed.diagnostics.log_stream == STREAM
    warnings = [e for e in captured if e["event"] == "image.log_tail_unavailable"]
    assert len(warnings) == 1
    assert (warnings[0]["error"], warnings[0]["code"]) == ("AccessDenied", "AccessDeniedException")
    assert (
        "logs:GetLogEvents on arn:aws:logs:eu-west-1:123456789012:log-group:"
        in (warnings[0]["note"])
    )
    assert GROUP in warnings[0]["note"]
    assert not [e for e in captured if e["event"] == "image.diagnostics_incomplete"]
    assert all(w.error is None and w.ended for w in result.watches.values())
    assert simulator.counters.requests["GetLogEvents"] == 1


async def test_a_throttled_log_read_is_retried_then_left_out() -> None:
    """CloudWatch Logs' ThrottlingException is retried on the log reads' own limiter,
    a few times, then the event goes out without the tail."""
    with capture_logs() as captured:
        _, sink, simulator = await watch(
            agent_with_logs_outage("ThrottlingException"), [AGENT], interval=30.0, log_lines=5
        )
    (failed,) = failed_events(sink)
    assert failed.diagnostics is not None
    assert failed.diagnostics.log_tail is None
    warnings = [e for e in captured if e["event"] == "image.log_tail_unavailable"]
    assert [(w["error"], w["code"]) for w in warnings] == [("Throttled", "ThrottlingException")]
    assert simulator.counters.requests["GetLogEvents"] == 3


async def _direct(fn: Callable[[], Awaitable[T]]) -> T:
    """`gather`'s `call` without pacing: these tests make a handful of calls."""
    return await fn()


async def test_a_log_stream_that_does_not_exist_leaves_the_tail_out() -> None:
    """A build whose log group holds no such stream (a group set in the recipe's
    logging configuration that the build never wrote to, a deleted stream)."""
    clock = FakeClock()
    simulator = Simulator(windows_agent(), clock=clock)
    async with simulator as url, AwsImageSource(clock=clock, endpoint_url=url) as aws:
        clock.advance(simulator.settled_at() + 1)
        snapshot = await aws.get(AGENT)
        with pytest.raises(NotFound, match="log stream does not exist"):
            await aws.log_tail(AGENT, GROUP, "3.1.0/99", 5)
        elsewhere = dataclasses.replace(snapshot, log_group="/custom/never-written")
        with capture_logs() as captured:
            diagnostics = await gather(aws, _direct, elsewhere, log_lines=5)
    assert diagnostics.log_tail is None
    assert diagnostics.log_group == "/custom/never-written"
    assert [(e["event"], e["error"]) for e in captured if e["log_level"] == "warning"] == [
        ("image.log_tail_unavailable", "NotFound")
    ]


async def test_the_failed_event_with_a_log_tail_validates_against_the_schema() -> None:
    _, sink, _ = await watch(windows_agent(), [AGENT], interval=30.0, log_lines=5)
    (failed,) = failed_events(sink)
    envelope = failed.envelope()
    assert envelope["data"]["diagnostics"]["log_tail"] == list(LAST_FIVE)
    validator = Draft202012Validator(event_schema())
    assert [e.message for e in validator.iter_errors(envelope)] == []


# ----------------------------------------------------------- lines of a tail


def test_a_multi_line_event_counts_as_its_lines() -> None:
    """`log_lines` counts lines, not events: the tail is never longer than asked."""
    messages = ["one", "two\nthree\r\nfour\n", "five\n"]
    assert tail_lines(messages, 3) == ("three", "four", "five")
    assert tail_lines(messages, 10) == ("one", "two", "three", "four", "five")
    assert tail_lines([], 5) == ()


def test_a_private_key_spread_over_lines_is_redacted_even_when_cut() -> None:
    messages = [
        "writing key",
        "-----BEGIN RSA PRIVATE KEY-----",
        "MIIEowIBAAKCAQEA",
        "b3BlbnNzaC1rZXkt",
        "-----END RSA PRIVATE KEY-----",
        "done",
    ]
    assert tail_lines(messages, 6) == (
        "writing key",
        "-----BEGIN RSA PRIVATE KEY-----",
        MARK,
        "-----END RSA PRIVATE KEY-----",
        "done",
    )
    assert tail_lines(messages, 4) == (MARK, "-----END RSA PRIVATE KEY-----", "done")


def test_a_long_line_is_cut_after_redaction_and_a_lone_surrogate_replaced() -> None:
    long = "x" * (MAX_LINE + 10) + " password=SECRET-AT-THE-END"
    (line,) = tail_lines([long], 1)
    assert line.startswith("x" * MAX_LINE + "…")
    assert "more characters" in line
    assert tail_lines(["bad \ud800 byte"], 1) == ("bad ? byte",)


@pytest.mark.parametrize(
    "events",
    [
        [{"timestamp": 1, "message": "a"}, {"timestamp": 2, "message": "b"}],
        [{"timestamp": 2, "message": "b"}, {"timestamp": 1, "message": "a"}],
    ],
    ids=["oldest first", "newest first"],
)
def test_a_page_reads_oldest_first_in_either_order(events: list[dict[str, Any]]) -> None:
    """The model says the latest events come "first" without saying how a page is
    ordered; AWS lists a page oldest first, and either order reads right."""
    page, token = _log_page({"events": events, "nextBackwardToken": "b/0"}, AGENT)
    assert (page, token) == (["a", "b"], "b/0")
