"""A build's log, as CloudWatch Logs GetLogEvents serves it on the simulator's
endpoint, read through the unmodified aiobotocore `logs` client.

Model facts relied on (botocore's logs/2014-03-28 service-2.json): protocol json 1.1,
targetPrefix Logs_20140328, POST /; GetLogEvents takes logGroupName or
logGroupIdentifier ("either ... but not both"), logStreamName, limit (1..10000),
nextToken and startFromHead ("If the value is false, the latest log events are
returned first. The default value is false"); it answers events [{timestamp,
message, ingestionTime}] and nextForwardToken / nextBackwardToken, which are never
null and "If you have reached the end of the stream, it returns the same token you
passed in"; it lists ResourceNotFoundException and InvalidParameterException.
botocore's json parser takes the error code from the body's `__type`.
Our reading: the log's lines and their wording, 400 for the errors, that a forward
token needs startFromHead true or is refused, and that random faults and rate limits
do not apply (an outage that names GetLogEvents does: tests/engine/test_log_tail.py).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from tests.simulator.helpers import logs
from tests.support import (
    ACCOUNT,
    SIGNED_LOOKING,
    WEB_BASE,
    imagebuilder,
    scenario,
    timeline,
    web_base_image,
)
from watcher.simulator import Simulator, load_scenario, model
from watcher.simulator.logs_service import service_model
from watcher.testing import FakeClock

DEMO = Path(__file__).parents[2] / "config" / "demo-scenario.toml"
REFERENCE = DEMO.with_name("scenario-reference.toml")
AGENT_GROUP = "/aws/imagebuilder/windows-agent"
AGENT_STREAM = "3.1.0/12"
GROUP = "/aws/imagebuilder/web-base"
STREAM = "1.4.0/7"
TARGET = "Logs_20140328.GetLogEvents"

# web-base's default timeline (tests.support): PENDING 0-60s, CREATING 60-120s,
# BUILDING 120-720s (4 default steps of 150s), TESTING 720-1020s, ...
FAILS_IN_BUILDING = web_base_image(
    timeline=[
        *timeline(("PENDING", 60)),
        {"status": "BUILDING", "duration": 600, "log": ["make: *** [all] Error 2"]},
        {"status": "FAILED", "reason": "Build failed"},
    ]
)


async def _all_messages(client: Any, group: str = GROUP, stream: str = STREAM) -> list[str]:
    response = await client.get_log_events(
        logGroupName=group, logStreamName=stream, startFromHead=True
    )
    return [e["message"] for e in response["events"]]


async def _settled(clock: FakeClock, simulator: Simulator) -> None:
    clock.advance(simulator.settled_at() + 1 - clock.monotonic())


async def test_the_tail_of_a_failed_build_is_its_last_five_lines_ending_with_the_failure(
    clock: FakeClock,
) -> None:
    """startFromHead false (the default) with limit 5: the demo's failing build's last
    five lines, oldest first, the step's own message and the FAILED status last."""
    simulator = Simulator(load_scenario(DEMO), clock=clock)
    async with simulator as url, logs(url, region="eu-west-1") as client:
        await _settled(clock, simulator)
        tail = await client.get_log_events(
            logGroupName=AGENT_GROUP, logStreamName=AGENT_STREAM, startFromHead=False, limit=5
        )
        everything = await _all_messages(client, AGENT_GROUP, AGENT_STREAM)
    messages = [e["message"] for e in tail["events"]]
    assert messages == everything[-5:]
    assert messages[:3] == [
        "Stderr: Test-AgentService: service 'ibagent' is StartPending after 60s",
        "Stderr: agent.conf: server=https://agents.corp.example:8443 "
        "password=SECRET-DEMO-AGENT-PASSWORD",
        "Stderr: Test-AgentService: service 'ibagent' did not reach Running within 120s",
    ]
    assert messages[3].startswith("Step 2/3 RunImageTests (ExecuteComponents) failed: ")
    assert messages[3].endswith("did not reach Running within 120s")
    assert messages[4] == (
        "Image status: FAILED: Image testing failed: component 'agent-smoke-test' "
        "step 'RunTests' exited with code 1"
    )
    stamps = [e["timestamp"] for e in tail["events"]]
    assert stamps == sorted(stamps)
    assert all(e["ingestionTime"] == e["timestamp"] for e in tail["events"])


async def test_lines_appear_as_scenario_time_passes(clock: FakeClock) -> None:
    """No stream before the build starts; then only lines stamped up to now, each
    look a continuation of the one before."""
    later = web_base_image(start=100)
    simulator = Simulator(scenario([later]), clock=clock)
    seen: list[list[str]] = []
    async with simulator as url, logs(url) as client:
        clock.advance(simulator.real_time(50) - clock.monotonic())
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            await _all_messages(client)
        for moment in (100, 200, 300, 700, 2000):
            clock.advance(simulator.real_time(moment) - clock.monotonic())
            response = await client.get_log_events(
                logGroupName=GROUP, logStreamName=STREAM, startFromHead=True
            )
            now_ms = clock.now().timestamp() * 1000
            assert all(e["timestamp"] <= now_ms for e in response["events"])
            seen.append([e["message"] for e in response["events"]])
    # It starts at 100: PENDING 100s, CREATING 160s, BUILDING 220s (steps of 150s).
    assert seen[0] == ["Image status: PENDING"]
    assert seen[1][-1] == "Image status: CREATING"
    assert seen[2][-1] == "Step 1/4 LaunchBuildInstance (LaunchInstance) started"
    assert "Step 3/4 CreateOutputAMI (CreateImage) started" in seen[3]
    assert seen[4][-1] == "Image status: AVAILABLE"
    for earlier, later_lines in itertools.pairwise(seen):
        assert later_lines[: len(earlier)] == earlier


async def test_paging_forward_and_backward_covers_the_stream_and_ends_with_the_same_token(
    clock: FakeClock,
) -> None:
    simulator = Simulator(scenario(), clock=clock)
    async with simulator as url, logs(url) as client:
        await _settled(clock, simulator)
        everything = await _all_messages(client)
        forward: list[str] = []
        token: str | None = None
        while True:
            more = {"nextToken": token} if token else {}
            page = await client.get_log_events(
                logGroupName=GROUP, logStreamName=STREAM, startFromHead=True, limit=4, **more
            )
            forward += [e["message"] for e in page["events"]]
            if page["nextForwardToken"] == token:
                assert page["events"] == []
                break
            token = page["nextForwardToken"]
        backward: list[list[str]] = []
        token = None
        while True:
            more = {"nextToken": token} if token else {}
            page = await client.get_log_events(
                logGroupName=GROUP, logStreamName=STREAM, limit=4, **more
            )
            backward.insert(0, [e["message"] for e in page["events"]])
            if page["nextBackwardToken"] == token:
                assert page["events"] == []
                break
            token = page["nextBackwardToken"]
    assert len(everything) > 8
    assert forward == everything
    assert [m for chunk in backward for m in chunk] == everything


async def test_a_forward_token_at_the_end_reads_lines_written_later(clock: FakeClock) -> None:
    """At the end the same token comes back with no events; once scenario time has
    moved on, that token reads the new lines."""
    simulator = Simulator(scenario(), clock=clock)
    async with simulator as url, logs(url) as client:
        clock.advance(simulator.real_time(130) - clock.monotonic())
        first = await client.get_log_events(
            logGroupName=GROUP, logStreamName=STREAM, startFromHead=True
        )
        token = first["nextForwardToken"]
        again = await client.get_log_events(
            logGroupName=GROUP, logStreamName=STREAM, startFromHead=True, nextToken=token
        )
        clock.advance(simulator.real_time(300) - clock.monotonic())
        after = await client.get_log_events(
            logGroupName=GROUP, logStreamName=STREAM, startFromHead=True, nextToken=token
        )
    assert (again["events"], again["nextForwardToken"]) == ([], token)
    assert [e["message"] for e in after["events"]] == [
        "Step 1/4 LaunchBuildInstance (LaunchInstance) completed",
        "Step 2/4 ApplyBuildComponents (ExecuteComponents) started",
    ]
    assert after["nextForwardToken"] != token


async def test_the_log_group_is_the_one_get_image_names(clock: FakeClock) -> None:
    """GetImage's loggingConfiguration.logGroupName and `<version>/<build>` from its
    version find the stream."""
    simulator = Simulator(scenario(), clock=clock)
    async with simulator as url, imagebuilder(url) as builder, logs(url) as client:
        clock.advance(simulator.real_time(30) - clock.monotonic())
        image = (await builder.get_image(imageBuildVersionArn=WEB_BASE))["image"]
        messages = await _all_messages(
            client, image["loggingConfiguration"]["logGroupName"], image["version"]
        )
    assert messages == ["Image status: PENDING"]


async def test_a_failed_build_logs_the_failing_step_with_its_message_after_scenario_lines(
    clock: FakeClock,
) -> None:
    simulator = Simulator(scenario([FAILS_IN_BUILDING]), clock=clock)
    async with simulator as url, logs(url) as client:
        await _settled(clock, simulator)
        messages = await _all_messages(client)
    assert messages[-3:] == [
        "make: *** [all] Error 2",
        "Step 2/4 ApplyBuildComponents (ExecuteComponents) failed: Build failed",
        "Image status: FAILED: Build failed",
    ]
    assert not any("CreateOutputAMI" in m for m in messages)


async def test_a_cancelled_build_logs_nothing_after_its_cancellation(clock: FakeClock) -> None:
    simulator = Simulator(scenario(), clock=clock)
    async with simulator as url, logs(url) as client:
        clock.advance(simulator.real_time(200) - clock.monotonic())
        before = await _all_messages(client)
        simulator.cancel_build(WEB_BASE)
        await _settled(clock, simulator)
        after = await _all_messages(client)
    assert after[: len(before)] == before
    assert after[len(before) :] == [
        "Step 1/4 LaunchBuildInstance (LaunchInstance) cancelled",
        after[-1],
    ]
    assert after[-1].startswith("Image status: CANCELLED: ")


async def test_unknown_group_stream_or_region_is_resource_not_found(clock: FakeClock) -> None:
    simulator = Simulator(scenario(), clock=clock)
    async with simulator as url:
        async with logs(url) as client:
            with pytest.raises(client.exceptions.ResourceNotFoundException) as group:
                await _all_messages(client, "/aws/imagebuilder/nothing-here")
            with pytest.raises(client.exceptions.ResourceNotFoundException) as stream:
                await _all_messages(client, GROUP, "1.4.0/8")
        # Log groups live in a region: web-base builds in us-east-1.
        async with logs(url, region="eu-west-1") as elsewhere:
            with pytest.raises(elsewhere.exceptions.ResourceNotFoundException):
                await _all_messages(elsewhere)
    assert group.value.response["Error"]["Message"] == "The specified log group does not exist."
    assert stream.value.response["Error"]["Message"] == "The specified log stream does not exist."
    assert group.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


async def test_the_group_is_given_by_name_or_identifier_but_not_both(clock: FakeClock) -> None:
    arn = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{GROUP}"
    simulator = Simulator(scenario(), clock=clock)
    async with simulator as url, logs(url) as client:
        by_arn = await client.get_log_events(logGroupIdentifier=arn, logStreamName=STREAM)
        by_name = await client.get_log_events(logGroupIdentifier=GROUP, logStreamName=STREAM)
        with pytest.raises(client.exceptions.InvalidParameterException):
            await client.get_log_events(
                logGroupName=GROUP, logGroupIdentifier=GROUP, logStreamName=STREAM
            )
        with pytest.raises(client.exceptions.InvalidParameterException):
            await client.get_log_events(logStreamName=STREAM)
    assert by_arn["events"] == by_name["events"] != []


async def test_a_forward_token_needs_start_from_head(clock: FakeClock) -> None:
    """The model: with a previous nextForwardToken "you must specify true for
    startFromHead"; refusing it otherwise is our reading."""
    simulator = Simulator(scenario(), clock=clock)
    async with simulator as url, logs(url) as client:
        page = await client.get_log_events(logGroupName=GROUP, logStreamName=STREAM)
        with pytest.raises(client.exceptions.InvalidParameterException):
            await client.get_log_events(
                logGroupName=GROUP, logStreamName=STREAM, nextToken=page["nextForwardToken"]
            )


async def test_the_wire_is_json_1_1_and_counted(clock: FakeClock) -> None:
    """The answer fits the model's output shape; an error carries `__type`; the
    signature must be scoped to `logs`; requests are counted per operation."""
    simulator = Simulator(scenario(), clock=clock)
    body = json.dumps({"logGroupName": GROUP, "logStreamName": STREAM})
    signed_for_logs = {
        **SIGNED_LOOKING,
        "Authorization": SIGNED_LOOKING["Authorization"].replace("/imagebuilder/", "/logs/"),
        "X-Amz-Target": TARGET,
        "Content-Type": "application/x-amz-json-1.1",
    }
    async with simulator as url, aiohttp.ClientSession() as http:
        async with http.post(f"{url}/", data=body, headers=signed_for_logs) as ok:
            answer = json.loads(await ok.read())
        wrong_scope = {**signed_for_logs, "Authorization": SIGNED_LOOKING["Authorization"]}
        async with http.post(f"{url}/", data=body, headers=wrong_scope) as refused:
            refusal = json.loads(await refused.read())
        async with http.post(
            f"{url}/", data=json.dumps({"logGroupName": GROUP}), headers=signed_for_logs
        ) as invalid:
            invalid_body = json.loads(await invalid.read())
    shape = service_model().operation_model("GetLogEvents").output_shape
    assert ok.status == 200
    assert ok.headers["Content-Type"].startswith("application/x-amz-json-1.1")
    assert model.violations(answer, shape) == []
    assert refused.status == 403
    assert refusal["__type"] == "InvalidSignatureException"
    assert "'logs'" in refusal["message"]
    assert invalid.status == 400
    assert invalid_body["__type"] == "InvalidParameterException"
    assert "logStreamName" in invalid_body["message"]
    assert simulator.counters.requests["GetLogEvents"] == 3
    assert simulator.counters.responses["GetLogEvents", "ok"] == 1
    assert simulator.counters.responses["GetLogEvents", "InvalidSignatureException"] == 1


async def test_other_targets_and_untargeted_posts_are_unknown_operations(
    clock: FakeClock,
) -> None:
    async with Simulator(scenario(), clock=clock) as url, aiohttp.ClientSession() as http:
        headers = {**SIGNED_LOOKING, "X-Amz-Target": "Logs_20140328.PutLogEvents"}
        async with http.post(f"{url}/", data="{}", headers=headers) as other:
            other_body = json.loads(await other.read())
        async with http.post(f"{url}/", data="{}", headers=SIGNED_LOOKING) as untargeted:
            pass
    assert other.status == 400
    assert other_body["__type"] == "UnknownOperationException"
    assert untargeted.status == 404
    assert untargeted.headers["x-amzn-ErrorType"] == "UnknownOperationException"


async def test_faults_of_the_scenario_do_not_apply_to_the_build_log(clock: FakeClock) -> None:
    """The fault plan is Image Builder's (its codes, its operations' rate limits)."""
    failing = scenario(faults={"errors": {"ServiceUnavailableException": 1.0}})
    simulator = Simulator(failing, clock=clock)
    async with simulator as url, logs(url) as client:
        messages = await _all_messages(client)
    assert messages == ["Image status: PENDING"]
    assert simulator.counters.injected_total() == 0


def test_log_lines_are_single_non_empty_lines() -> None:
    for bad in ([], [""], ["two\nlines"]):
        with pytest.raises(ValidationError, match="log"):
            scenario([web_base_image(timeline=[{"status": "AVAILABLE", "log": bad}])])


def test_reference_scenario_documents_the_log_key() -> None:
    reference = load_scenario(REFERENCE)
    steps = [s for image in reference.images for s in image.timeline]
    assert any("log" in s.model_fields_set for s in steps)
