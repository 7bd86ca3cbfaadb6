"""`ibwatch wait-until-available` as CI runs it, against the simulator: in-process
(`tests/cli/in_thread.py`) where the exit code and the output are what is checked,
and as a real subprocess for what only a process shows: its exit status (0 and 1)
and GITHUB_OUTPUT from its inherited environment (two tests)."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any, Literal

import anyio
import botocore.session
import pytest
from aiohttp import web

from tests.cli.in_thread import Ran, ibwatch
from tests.support import ACCOUNT, imagebuilder, scenario, timeline, web_base_image
from watcher import cli
from watcher.result_files import ResultFiles
from watcher.simulator import Scenario, Simulator
from watcher.testing import FakeClock, VirtualClock
from watcher.wait import WaitRequest, wait_until_available

IBWATCH = Path(sys.executable).parent / "ibwatch"
WEB = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/web-base/1.4.0/7"
AGENT = f"arn:aws:imagebuilder:eu-west-1:{ACCOUNT}:image/windows-agent/3.1.0/12"
API = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/api-runtime/2.0.3/1"
URI = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/api-runtime:2.0.3-1"

FAILED_STEP = {
    "status": "FAILED",
    "reason": "Image testing failed",
    "failure_context": {"imageStatus": "TESTING", "failedStep": "RunImageTests"},
}


def accounts() -> Scenario:
    return scenario(
        [
            web_base_image(timeline=timeline(("AVAILABLE", None))),
            {"arn": AGENT, "timeline": [FAILED_STEP]},
            {
                "arn": API,
                "type": "DOCKER",
                "timeline": timeline(("AVAILABLE", None)),
                "containers": [{"region": "us-east-1", "image_uris": [URI]}],
            },
            {"arn": WEB.replace("web-base", "slow"), "timeline": timeline(("BUILDING", None))},
        ]
    )


async def ibwatch_wait(
    plan: Scenario, *args: str, env: dict[str, str] | None = None, after: float | None = None
) -> tuple[Ran, Simulator]:
    """Run it in-process against `plan`, with `env` added to the environment; with
    `after`, on a simulator whose scenario time stands still at that many seconds."""
    clock = FakeClock() if after is not None else None
    simulator = Simulator(plan, clock=clock)
    async with simulator as url:
        if clock is not None and after is not None:
            clock.advance(after)
        done = await ibwatch(
            "wait-until-available", "--endpoint-url", url, "--interval", "0.2s", *args, env=env
        )
    return done, simulator


async def ibwatch_process(
    plan: Scenario, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run it as the real `ibwatch` program against `plan`: `env` is its whole
    environment, as the caller gives it."""
    async with Simulator(plan) as url:
        done = await anyio.run_process(
            [
                str(IBWATCH),
                "wait-until-available",
                "--endpoint-url",
                url,
                "--interval",
                "0.2s",
                *args,
            ],
            check=False,
            env=env,
        )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


async def wait_on_virtual_time(
    endpoint_url: str,
    arn: str,
    *,
    seconds: float,
    output: Literal["text", "json"] = "text",
    github_output: Path | None = None,
) -> Ran:
    """What `wait-until-available --endpoint-url URL --interval 0.2s --timeout SECONDS ARN`
    runs (`wait_until_available`), on virtual time: the timeout comes once nothing
    else is due, so what the wait saw before it never depends on how busy the machine
    is, and no test waits it out. `--timeout` reaches the request through the code
    `start` uses too (`_wait_request`), which tests/cli/test_start.py runs, as real
    processes, to a real timeout."""
    clock = VirtualClock()
    stdout, stderr = io.StringIO(), io.StringIO()
    request = WaitRequest(
        arns=(arn,),
        timeout=seconds,
        interval=0.2,
        endpoint_url=endpoint_url,
        output=output,
        files=ResultFiles(github_output=github_output) if github_output else None,
    )
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        code = await wait_until_available(request, clock=clock, stdout=stdout, stderr=stderr)
        group.cancel_scope.cancel()
    return Ran(code, stdout.getvalue(), stderr.getvalue())


async def test_exit_0_when_every_build_is_available_and_prints_the_amis() -> None:
    done, _ = await ibwatch_wait(accounts(), WEB, API)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{WEB}  AVAILABLE",
        "  us-east-1  ami-0a1b2c3d4e5f60718",
        "  eu-west-1  ami-0b2c3d4e5f6071829",
        "  ap-southeast-2  ami-0c3d4e5f607182930",
        f"{API}  AVAILABLE",
        f"  us-east-1  {URI}",
    ]


async def test_exit_1_names_the_failing_arn_status_reason_and_failed_step() -> None:
    """A real process: its exit status is what CI reads."""
    done = await ibwatch_process(accounts(), WEB, AGENT)
    assert done.returncode == 1
    assert (
        f"{AGENT}  FAILED  in TESTING: Image testing failed  (failed step: RunImageTests)"
        in done.stdout.splitlines()
    )


async def test_exit_3_on_timeout_while_a_build_is_still_in_progress() -> None:
    """On virtual time: at a real one-second timeout, a busy machine could spend the
    second before the first answer, and the line would say no answer came."""
    slow = WEB.replace("web-base", "slow")
    async with Simulator(accounts()) as url:
        done = await wait_on_virtual_time(url, slow, seconds=1)
    assert done.returncode == 3
    assert done.stdout.splitlines() == [f"{slow}  BUILDING  (still in progress at the timeout)"]


async def test_exit_4_on_an_error_retrying_cannot_heal() -> None:
    missing = WEB.replace("web-base", "nothing-here")
    done, simulator = await ibwatch_wait(accounts(), missing, "--not-found-grace", "0s")
    assert done.returncode == 4
    assert done.stdout.startswith(f"{missing}  ERROR  ResourceNotFoundException: ")
    assert simulator.counters.requests["GetImage"] == 1, "a final error is never retried"


async def test_exit_4_on_access_denied() -> None:
    denied = scenario([web_base_image()], faults={"errors": {"ForbiddenException": 1.0}})
    done, simulator = await ibwatch_wait(denied, WEB)
    assert done.returncode == 4
    assert "ForbiddenException" in done.stdout
    assert simulator.counters.requests["GetImage"] == 1


@pytest.mark.parametrize(
    "bad",
    [
        "arn:aws:imagebuilder:us-east-1:123:image/x/1.0.0/1",
        "web-base",
        f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:component/x/1.0.0/1",
    ],
)
async def test_exit_2_on_an_invalid_arn_before_any_request(bad: str) -> None:
    done, simulator = await ibwatch_wait(accounts(), WEB, bad)
    assert done.returncode == 2
    assert done.stderr.startswith(f"ibwatch: {bad!r}")
    assert done.stdout == ""
    assert simulator.counters.requests["GetImage"] == 0


async def test_exit_2_on_an_unreadable_timeout() -> None:
    done, simulator = await ibwatch_wait(accounts(), WEB, "--timeout", "soon")
    assert done.returncode == 2
    assert "expected a duration such as" in done.stderr
    assert simulator.counters.requests["GetImage"] == 0


async def test_json_output_parses_and_holds_every_image() -> None:
    done, _ = await ibwatch_wait(accounts(), WEB, AGENT, "--output", "json")
    report: dict[str, Any] = json.loads(done.stdout)
    assert (report["status"], report["exit_code"], report["timed_out"]) == ("FAILED", 1, False)
    web, agent = report["images"]
    assert web["amis"][0] == {"region": "us-east-1", "image": "ami-0a1b2c3d4e5f60718"}
    assert (agent["status"], agent["failed_in"], agent["failed_step"]) == (
        "FAILED",
        "TESTING",
        "RunImageTests",
    )


async def test_github_output_gets_status_amis_and_container_uris(tmp_path: Path) -> None:
    """A real process, which finds GITHUB_OUTPUT in the environment it inherits; its
    exit status 0 is what CI reads."""
    outputs = tmp_path / "github_output"
    outputs.write_text("earlier=kept\n")
    env = {**os.environ, "GITHUB_OUTPUT": str(outputs)}
    done = await ibwatch_process(accounts(), WEB, API, env=env)
    assert done.returncode == 0
    lines = outputs.read_text().splitlines()
    assert lines[0] == "earlier=kept", "appended, never overwritten"
    values = dict(line.split("=", 1) for line in lines[1:])
    assert values["status"] == "AVAILABLE"
    assert values["exit_code"] == "0"
    assert values["ami_eu-west-1"] == "ami-0b2c3d4e5f6071829"
    assert json.loads(values["amis"])["ap-southeast-2"] == "ami-0c3d4e5f607182930"
    assert json.loads(values["container_uris"]) == [URI]
    assert json.loads(values["result"])["images"][0]["arn"] == WEB


async def test_progress_on_stderr_shows_each_transition_when_not_a_terminal() -> None:
    done, _ = await ibwatch_wait(accounts(), WEB)
    assert "web-base 1.4.0/7 is AVAILABLE in 3 regions" in done.stderr


async def test_endpoint_from_aws_endpoint_url_imagebuilder() -> None:
    """Any endpoint given the standard botocore way works, with no flag."""
    simulator = Simulator(accounts())
    async with simulator as url:
        done = await ibwatch(
            "wait-until-available",
            "--interval",
            "0.2s",
            WEB,
            env={"AWS_ENDPOINT_URL_IMAGEBUILDER": url},
        )
    assert done.returncode == 0, done.stderr
    assert simulator.counters.requests["GetImage"] == 1


# --- version ARNs: the newest build, found by listing ---------------------------------
# botocore's model, GetImage imageBuildVersionArn: "A version or wildcard ARN resolves to
# the latest matching build version that has reached AVAILABLE status ... To get an image
# in any other state, such as a failed or in-progress build, specify the full build
# version ARN." So a version ARN is listed, and its newest build waited on.

VERSION = WEB.rsplit("/", 1)[0]
NEWER_AMI = "ami-0d4e5f60718293a4b"


def old_available_and_newer(last: dict[str, Any]) -> Scenario:
    """Build 6 AVAILABLE, then build 7 (created a second later) ending as `last`."""
    return scenario(
        [
            web_base_image(arn=f"{VERSION}/6", timeline=timeline(("AVAILABLE", None))),
            web_base_image(
                arn=f"{VERSION}/7",
                start=1,
                timeline=[{k: v for k, v in last.items() if k != "amis"}],
                amis=last.get("amis", []),
            ),
        ]
    )


async def test_a_version_whose_newest_build_succeeds_exits_0_with_its_own_amis() -> None:
    newer = {"status": "AVAILABLE", "amis": [{"region": "us-east-1", "image": NEWER_AMI}]}
    done, _ = await ibwatch_wait(old_available_and_newer(newer), VERSION, after=2)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{VERSION}/7  AVAILABLE",
        f"  us-east-1  {NEWER_AMI}",
    ]


async def test_a_version_without_a_build_keeps_looking_then_exits_3_saying_so() -> None:
    simulator = Simulator(accounts())
    async with simulator as url:
        done = await wait_on_virtual_time(url, VERSION.replace("web-base", "unbuilt"), seconds=1)
    assert done.returncode == 3
    assert done.stdout.splitlines() == [
        f"{VERSION.replace('web-base', 'unbuilt')}  TIMEOUT  "
        f"(no build of {VERSION.replace('web-base', 'unbuilt')} yet; the account these "
        "credentials read has no build of any image named 'unbuilt' in us-east-1: is the "
        "name right?)"
    ]
    # Listed again every 0.2 s (jittered by up to 10%) until the 1 s timeout: 5 or 6 times;
    # then once by the image name, to say whether it has any build at all.
    assert 6 <= simulator.counters.requests["ListImageBuildVersions"] <= 7, "it kept looking"
    assert simulator.counters.requests["GetImage"] == 0


@pytest.mark.parametrize("version", ["1.9.0", "2.x.x"])
async def test_a_timeout_on_a_version_of_a_known_image_says_it_has_other_versions(
    version: str,
) -> None:
    """web-base has builds (1.4.0/7), none of this version: the name is right."""
    arn = VERSION.replace("1.4.0", version)
    async with Simulator(accounts()) as url:
        done = await wait_on_virtual_time(url, arn, seconds=1)
    assert done.returncode == 3
    assert done.stdout.splitlines() == [
        f"{arn}  TIMEOUT  (no build of {arn} yet; image 'web-base' has builds of other "
        f"versions in us-east-1, none of {version})"
    ]


async def test_a_timeout_on_a_version_whose_builds_are_all_retired_says_so() -> None:
    """1.4.0/7 is DEPRECATED: a version ARN does not resolve to it (GetImage's model),
    so the wait finds no build to wait on, and the timeout says why rather than
    "builds of other versions"."""
    plan = scenario([web_base_image(timeline=timeline(("DEPRECATED", None)))])
    async with Simulator(plan) as url:
        done = await wait_on_virtual_time(url, VERSION, seconds=1)
    assert done.returncode == 3
    assert done.stdout.splitlines() == [
        f"{VERSION}  TIMEOUT  (no build of {VERSION} yet; its only builds are DEPRECATED, "
        "which a version ARN does not resolve to (GetImage's model: builds later deprecated, "
        'disabled or deleted "don\'t resolve"): give the build-version ARN to wait on one '
        "of them)"
    ]


async def test_a_version_refused_while_looking_for_a_build_exits_4_no_longer_waiting() -> None:
    """Access is denied from 1 s on, while the version still has no build: exit 4 at
    once, and the result says why, not "no build of ... yet" as well."""
    clock = VirtualClock()
    unbuilt = VERSION.replace("web-base", "unbuilt")
    refused = {"code": "ForbiddenException", "start": 1, "end": 3600}
    simulator = Simulator(scenario([], faults={"outages": [refused]}), clock=clock)
    stdout, stderr = io.StringIO(), io.StringIO()
    request = WaitRequest(arns=(unbuilt,), timeout=600, interval=0.2, output="json")
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        async with simulator as url:
            request = dataclasses.replace(request, endpoint_url=url)
            code = await wait_until_available(request, clock=clock, stdout=stdout, stderr=stderr)
        group.cancel_scope.cancel()
    assert code == 4, stdout.getvalue() + stderr.getvalue()
    (image,) = json.loads(stdout.getvalue())["images"]
    assert (image["error"]["type"], image["waiting"]) == ("AccessDenied", None)
    assert clock.monotonic() < 10


async def test_github_output_names_the_build_a_version_resolved_to(tmp_path: Path) -> None:
    outputs = tmp_path / "github_output"
    env = {"GITHUB_OUTPUT": str(outputs)}
    newer = {"status": "AVAILABLE", "amis": [{"region": "us-east-1", "image": NEWER_AMI}]}
    plan = old_available_and_newer(newer)
    plan = Scenario.model_validate(
        {**plan.model_dump(), "images": [plan.images[1].model_dump() | {"start": 0}]}
    )
    done, _ = await ibwatch_wait(plan, VERSION, env=env)
    assert done.returncode == 0
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert values["build_arn"] == f"{VERSION}/7"
    assert json.loads(values["build_arns"]) == [f"{VERSION}/7"]


async def test_not_found_within_the_grace_is_retried_and_the_build_then_waited_on() -> None:
    """Right after StartImagePipelineExecution a new build ARN can answer 404 for a moment."""
    clock = FakeClock()  # the build appears only when the test moves time past 5 s
    simulator = Simulator(
        scenario([web_base_image(start=5, timeline=timeline(("AVAILABLE", None)))]), clock=clock
    )
    async with simulator as url, anyio.create_task_group() as group:
        done: list[Ran] = []

        async def wait() -> None:
            done.append(
                await ibwatch(
                    "wait-until-available",
                    "--endpoint-url",
                    url,
                    "--interval",
                    "0.1s",
                    "--not-found-grace",
                    "1h",
                    WEB,
                )
            )

        group.start_soon(wait)
        with anyio.fail_after(30):
            # The counters have no event to wait on: look again every 10 ms.
            while simulator.counters.responses["GetImage", "ResourceNotFoundException"] < 2:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        clock.advance(5)
    assert done[0].returncode == 0, done[0].stderr
    assert done[0].stdout.splitlines()[0] == f"{WEB}  AVAILABLE"


def test_the_not_found_grace_is_two_minutes_unless_given_for_both_commands() -> None:
    pipeline = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image-pipeline/web-base-nightly"
    for argv in (["wait-until-available", WEB], ["start", pipeline]):
        args = cli.build_parser().parse_args(argv)
        assert cli._wait_request(args, ()).not_found_grace == 120.0
    given = cli.build_parser().parse_args(["wait-until-available", "--not-found-grace", "5m", WEB])
    assert cli._wait_request(given, ()).not_found_grace == 300.0


@pytest.mark.parametrize(("appears", "code"), [(110, 0), (None, 4)])
async def test_by_default_a_404_is_retried_for_two_minutes_then_exits_4(
    appears: int | None, code: int
) -> None:
    """The command line's own defaults (grace 2m, interval 30s), on virtual time shared
    with the simulator: a build that appears after 110 s is waited on; one that never
    does answers 404 at about 0, 30, 60, 90 and 120 s (jittered), then is given up,
    and the result no longer says it is waiting for it."""
    clock = VirtualClock()
    images = (
        []
        if appears is None
        else [web_base_image(start=appears, timeline=[{"status": "AVAILABLE"}])]
    )
    simulator = Simulator(scenario(images), clock=clock)
    stdout, stderr = io.StringIO(), io.StringIO()
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        async with simulator as url:
            argv = ["wait-until-available", "--endpoint-url", url, "--output", "json", WEB]
            request = cli._wait_request(cli.build_parser().parse_args(argv), (WEB,))
            done = await wait_until_available(request, clock=clock, stdout=stdout, stderr=stderr)
        group.cancel_scope.cancel()
    assert done == code, stdout.getvalue() + stderr.getvalue()
    (image,) = json.loads(stdout.getvalue())["images"]
    not_found = simulator.counters.responses["GetImage", "ResourceNotFoundException"]
    if appears is None:
        assert 5 <= not_found <= 6
        assert clock.monotonic() < 200, "given up after the grace, not at the 2 h timeout"
        assert (image["error"]["type"], image["waiting"]) == ("NotFound", None)
    else:
        assert 4 <= not_found <= 5
        assert (image["status"], image["error"], image["waiting"]) == ("AVAILABLE", None, None)


def wildcard_plan() -> Scenario:
    """1.4.0/7 AVAILABLE, then 1.4.0/8 FAILED (created 3 s later), then 1.3.9/2
    AVAILABLE (5 s: the newest matching `1.x.x`, but a lower version), then 2.0.0/1."""
    return scenario(
        [
            web_base_image(arn=f"{VERSION}/7", timeline=timeline(("AVAILABLE", None))),
            web_base_image(arn=f"{VERSION}/8", start=3, timeline=[FAILED_STEP]),
            web_base_image(
                arn=WEB.replace("1.4.0/7", "1.3.9/2"),
                start=5,
                timeline=timeline(("AVAILABLE", None)),
            ),
            web_base_image(
                arn=WEB.replace("1.4.0/7", "2.0.0/1"),
                start=9,
                timeline=timeline(("AVAILABLE", None)),
            ),
        ],
    )


NEWER_AVAILABLE = {"status": "AVAILABLE", "amis": [{"region": "us-east-1", "image": NEWER_AMI}]}
WILDCARD = WEB.replace("1.4.0/7", "1.x.x")


@cache
def _sync_models() -> Any:
    """botocore's loader of service models, read from disk once for these tests."""
    return botocore.session.get_session().get_component("data_loader")


def sync_client_view(url: str, arn: str) -> tuple[str, list[str], list[tuple[str, str]]]:
    """What botocore's synchronous client (the AWS CLI's) sees of `arn`: the build
    GetImage answers and its AMIs, and every build ListImageBuildVersions pages
    through (by the exact version, or for a wildcard by the image name) that
    matches `arn`, with its status: highest version first, then newest created."""
    session = botocore.session.get_session()
    session.register_component("data_loader", _sync_models())
    client = session.create_client(
        "imagebuilder",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="not-a-secret",
    )
    try:
        image = client.get_image(imageBuildVersionArn=arn)["image"]
        amis = [ami["image"] for ami in image["outputResources"]["amis"]]
        name, version = arn.split(":image/", 1)[1].split("/")
        asked: dict[str, Any] = (
            {"filters": [{"name": "name", "values": [name]}]}
            if "x" in version
            else {"imageVersionArn": arn}
        )
        summaries = [
            summary
            for page in client.get_paginator("list_image_build_versions").paginate(**asked)
            for summary in page["imageSummaryList"]
            if all(
                w in ("x", h)
                for w, h in zip(
                    version.split("."), summary["version"].split("/")[0].split("."), strict=True
                )
            )
        ]
        summaries.sort(
            key=lambda s: (
                tuple(int(n) for n in s["version"].split("/")[0].split(".")),
                s["dateCreated"],
                int(s["version"].split("/")[1]),
            ),
            reverse=True,
        )
        return image["arn"], amis, [(s["arn"], s["state"]["status"]) for s in summaries]
    finally:
        client.close()


@pytest.mark.parametrize(
    ("plan", "arn", "code", "waited_on", "got"),
    [
        pytest.param(
            old_available_and_newer(FAILED_STEP),
            VERSION,
            1,
            f"{VERSION}/7",
            f"{VERSION}/6",
            id="newest-fails",
        ),
        pytest.param(
            old_available_and_newer(NEWER_AVAILABLE),
            VERSION,
            0,
            f"{VERSION}/7",
            f"{VERSION}/7",
            id="newest-succeeds",
        ),
        pytest.param(
            wildcard_plan(),
            WILDCARD,
            1,
            f"{VERSION}/8",
            f"{VERSION}/7",
            id="wildcard",
        ),
    ],
)
async def test_both_clients_see_why_a_version_is_listed_not_got(
    plan: Scenario, arn: str, code: int, waited_on: str, got: str
) -> None:
    """On one simulator: `wait-until-available ARN` (the unmodified aiobotocore client)
    waits on the newest build of the highest matching version, whatever its state, and
    exits on it (for `1.x.x`, the failed 1.4.0/8, not the later 1.3.9/2); botocore's
    synchronous client sees GetImage answer the newest AVAILABLE build instead (the
    model: "A version or wildcard ARN resolves to the latest matching build version
    that has reached AVAILABLE status"), and the same build first in the list."""
    clock = FakeClock()
    simulator = Simulator(plan, clock=clock)
    async with simulator as url:
        clock.advance(10)
        done = await ibwatch("wait-until-available", "--endpoint-url", url, "--output", "json", arn)
        got_arn, got_amis, listed = await anyio.to_thread.run_sync(sync_client_view, url, arn)
    assert done.returncode == code, done.stderr
    (image,) = json.loads(done.stdout)["images"]
    assert (image["arn"], image["build_arn"]) == (arn, waited_on)
    assert image["status"] == ("AVAILABLE" if code == 0 else "FAILED")
    assert listed[0] == (waited_on, image["status"])
    assert got_arn == got
    if code == 0:
        assert [ami["image"] for ami in image["amis"]] == got_amis == [NEWER_AMI]
    assert simulator.counters.requests["ListImageBuildVersions"] == 2, "one page each client"


# --- wildcards, as AWS's semantic-versioning guide selects them -------------------------
# https://docs.aws.amazon.com/imagebuilder/latest/userguide/ibhow-semantic-versioning.html:
# "given the following latest versions: 2.2.4, 1.7.8, and 1.6.8", x.x.x = 2.2.4,
# 1.x.x = 1.7.8, 1.6.x = 1.6.8; "x.2.x" and "1.x.8" are "invalid, and produces an error".

IMAGES = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image"


def semantic_plan() -> Scenario:
    """`lib`: 1.2.0/1 AVAILABLE, then 1.0.0/5 created later (the user trial's case).
    `app`: the guide's 2.2.4, 1.7.8 and 1.6.8, built in that order's reverse."""
    available = timeline(("AVAILABLE", None))
    builds = [("lib/1.2.0/1", 0), ("lib/1.0.0/5", 3)]
    builds += [("app/1.6.8/1", 0), ("app/1.7.8/1", 1), ("app/2.2.4/1", 2)][::-1]
    return scenario(
        [
            web_base_image(arn=f"{IMAGES}/{arn}", start=start, timeline=available)
            for arn, start in builds
        ]
    )


async def test_a_wildcard_means_the_highest_version_as_aws_documents_not_the_newest() -> None:
    """Each wildcard waits on the build GetImage resolves it to (all are AVAILABLE, so
    the model's rule and ours agree): lib/1.x.x is 1.2.0/1, not the later 1.0.0/5."""
    wildcards = {
        "lib/1.x.x": "lib/1.2.0/1",
        "app/x.x.x": "app/2.2.4/1",
        "app/1.x.x": "app/1.7.8/1",
        "app/1.6.x": "app/1.6.8/1",
    }
    arns = [f"{IMAGES}/{w}" for w in wildcards]
    clock = FakeClock()
    async with Simulator(semantic_plan(), clock=clock) as url, imagebuilder(url) as client:
        clock.advance(10)
        # --max-tps: 8 calls at the default 5/s would pace this test for 1.6 s.
        done = await ibwatch(
            "wait-until-available",
            "--endpoint-url",
            url,
            "--max-tps",
            "100",
            "--output",
            "json",
            *arns,
        )
        got = [(await client.get_image(imageBuildVersionArn=a))["image"]["arn"] for a in arns]
    assert done.returncode == 0, done.stderr
    waited_on = [image["build_arn"] for image in json.loads(done.stdout)["images"]]
    assert waited_on == got == [f"{IMAGES}/{b}" for b in wildcards.values()]


async def test_a_wildcard_passes_over_a_deprecated_build_as_getimage_does() -> None:
    """GetImage's model: "Builds that were later deprecated, disabled, or deleted don't
    resolve." lib/2.0.0/1 was AVAILABLE, then DEPRECATED; lib/1.9.0/1 is AVAILABLE:
    lib/x.x.x waits on 1.9.0/1, exit 0 (it waited on the deprecated one, exit 1)."""
    plan = scenario(
        [
            web_base_image(
                arn=f"{IMAGES}/lib/2.0.0/1",
                timeline=timeline(("AVAILABLE", 1), ("DEPRECATED", None)),
            ),
            web_base_image(arn=f"{IMAGES}/lib/1.9.0/1", timeline=timeline(("AVAILABLE", None))),
        ]
    )
    wildcard = f"{IMAGES}/lib/x.x.x"
    clock = FakeClock()
    async with Simulator(plan, clock=clock) as url, imagebuilder(url) as client:
        clock.advance(10)
        done = await ibwatch(
            "wait-until-available", "--endpoint-url", url, "--output", "json", wildcard
        )
        got = (await client.get_image(imageBuildVersionArn=wildcard))["image"]["arn"]
    assert done.returncode == 0, done.stderr
    (image,) = json.loads(done.stdout)["images"]
    assert (image["build_arn"], image["status"]) == (got, "AVAILABLE")
    assert got == f"{IMAGES}/lib/1.9.0/1"


@pytest.mark.parametrize("version", ["x.1.x", "1.x.8", "x.x.8"])
async def test_exit_2_on_a_wildcard_with_a_number_right_of_the_first_x(version: str) -> None:
    arn = VERSION.replace("1.4.0", version)
    done, simulator = await ibwatch_wait(accounts(), arn)
    assert done.returncode == 2
    assert done.stderr.startswith(
        f"ibwatch: {arn!r}: {version} is not a valid wildcard version: every node right of "
        "the first x must be x"
    )
    assert sum(simulator.counters.requests.values()) == 0


async def test_exit_2_on_a_wildcard_of_an_aws_owned_image_saying_what_to_give() -> None:
    """Without imageVersionArn, ListImageBuildVersions lists "all of the images in your
    account" (the model): an AWS-owned image's builds are never among them."""
    arn = "arn:aws:imagebuilder:us-east-1:aws:image/amazon-linux-2023-x86/x.x.x"
    done, simulator = await ibwatch_wait(accounts(), arn)
    assert done.returncode == 2
    assert done.stderr.startswith(
        f"ibwatch: {arn!r}: a wildcard version of an image owned by 'aws' cannot be waited on"
    )
    assert "Give the build version ARN (.../NAME/X.Y.Z/BUILD)" in done.stderr
    assert sum(simulator.counters.requests.values()) == 0


async def test_exit_2_on_a_pipeline_arn_pointing_to_start_and_watch_pipelines() -> None:
    pipeline = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image-pipeline/web-base-nightly"
    done, simulator = await ibwatch_wait(accounts(), pipeline)
    assert done.returncode == 2
    assert done.stderr.startswith(
        f"ibwatch: {pipeline!r} is an image pipeline ARN, not an image ARN: to start the "
        "pipeline and wait for its build, use `ibwatch start`; to follow its builds, list it "
        "in `[watch] pipelines`."
    )
    assert sum(simulator.counters.requests.values()) == 0


# --- what a timeout and the outputs say ------------------------------------------------


async def wait_on_nothing(
    output: Literal["text", "json"] = "text", github_output: Path | None = None
) -> Ran:
    """`wait-until-available WEB` for 2 s (virtual) against a loopback port nothing
    listens on."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    return await wait_on_virtual_time(
        f"http://127.0.0.1:{port}", WEB, seconds=2, output=output, github_output=github_output
    )


async def test_a_timeout_against_an_unreachable_endpoint_says_it_never_reached_the_api(
    tmp_path: Path,
) -> None:
    outputs = tmp_path / "github_output"
    done = await wait_on_nothing("json", github_output=outputs)
    assert done.returncode == 3
    (image,) = json.loads(done.stdout)["images"]
    assert image["status"] is None
    assert image["last_error"]["type"] == "Unavailable"
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert json.loads(values["errors"])[0]["arn"] == WEB


async def test_a_timeout_in_text_names_the_cause() -> None:
    done = await wait_on_nothing()
    (line,) = done.stdout.splitlines()
    assert line.startswith(
        f"{WEB}  TIMEOUT  (no answer before the timeout; never reached the API: "
    )


async def test_two_images_in_one_region_leave_ami_region_out_with_a_warning(
    tmp_path: Path,
) -> None:
    outputs = tmp_path / "github_output"
    other = WEB.replace("web-base", "web-other")
    plan = scenario(
        [
            web_base_image(timeline=timeline(("AVAILABLE", None))),
            web_base_image(
                arn=other,
                timeline=timeline(("AVAILABLE", None)),
                amis=[{"region": "us-east-1", "image": NEWER_AMI}],
            ),
        ]
    )
    done, _ = await ibwatch_wait(plan, WEB, other, env={"GITHUB_OUTPUT": str(outputs)})
    assert done.returncode == 0
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert "ami_us-east-1" not in values
    assert values["ami_eu-west-1"] == "ami-0b2c3d4e5f6071829"
    images = json.loads(values["images"])
    assert [i["arn"] for i in images] == [WEB, other]
    assert {"region": "us-east-1", "image": NEWER_AMI} in images[1]["amis"]
    assert "ibwatch: warning: ami_us-east-1 is not set: 2 images have an AMI there" in done.stderr


@pytest.mark.parametrize("rate", ["0", "-1", "nan", "inf", "1e-300", "0.001", "fast"])
async def test_exit_2_on_a_max_tps_that_is_no_pace_naming_the_option(rate: str) -> None:
    done, simulator = await ibwatch_wait(accounts(), WEB, "--max-tps", rate)
    assert done.returncode == 2
    assert "argument --max-tps: expected " in done.stderr
    assert "Traceback" not in done.stderr
    assert simulator.counters.requests["GetImage"] == 0


async def test_a_slow_max_tps_below_the_limiters_floor_is_a_pace_not_a_crash() -> None:
    """0.1 calls/s was refused with a ValueError traceback: the floor now follows it."""
    done, _ = await ibwatch_wait(accounts(), WEB, "--max-tps", "0.1")
    assert done.returncode == 0, done.stderr


async def test_a_bare_number_is_a_duration_in_seconds_on_the_command_line() -> None:
    done, _ = await ibwatch_wait(accounts(), WEB, "--timeout", "600", "--interval", "1")
    assert done.returncode == 0, done.stderr


async def test_exit_2_on_a_zero_timeout_naming_the_option() -> None:
    done, simulator = await ibwatch_wait(accounts(), WEB, "--timeout", "0s")
    assert done.returncode == 2
    assert "argument --timeout: must be longer than zero, got '0s'" in done.stderr
    assert simulator.counters.requests["GetImage"] == 0


# --- any endpoint: pages and an order the simulator never serves -----------------------
# The model documents no order for ListImageBuildVersions and lets a page be short, even
# empty, while nextToken is set ("When this field isn't empty, there are additional
# elements"). The simulator lists newest first, so against it a client that took the
# first item, or stopped early, would pass. This stub endpoint serves the builds
# scrambled across short pages instead.

BUILT_AT = "2026-01-05T10:0{}:00.000Z"


def summary(arn: str, minute: int) -> dict[str, Any]:
    """An ImageSummary (the model's members a build listing carries)."""
    name, version, build = arn.split(":image/", 1)[1].split("/")
    return {
        "arn": arn,
        "name": name,
        "type": "AMI",
        "version": f"{version}/{build}",
        "platform": "Linux",
        "owner": ACCOUNT,
        "state": {"status": "AVAILABLE"},
        "dateCreated": BUILT_AT.format(minute),
    }


class ScrambledLister:
    """ListImageBuildVersions in `pages` (nextToken "1", "2", ... to the next one) and
    GetImage answering AVAILABLE with an AMI; every request kept as it came."""

    def __init__(self, pages: list[list[dict[str, Any]]]) -> None:
        self.pages = pages
        self.requests: list[tuple[str, dict[str, Any]]] = []

    async def list_build_versions(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        self.requests.append(("ListImageBuildVersions", body))
        index = int(body.get("nextToken", "0"))
        answer: dict[str, Any] = {"requestId": "r", "imageSummaryList": self.pages[index]}
        if index + 1 < len(self.pages):
            answer["nextToken"] = str(index + 1)
        return web.json_response(answer)

    async def get_image(self, request: web.Request) -> web.Response:
        arn = request.query["imageBuildVersionArn"]
        self.requests.append(("GetImage", {"imageBuildVersionArn": arn}))
        image = summary(arn, 0) | {
            "outputResources": {"amis": [{"region": "us-east-1", "image": NEWER_AMI}]}
        }
        return web.json_response({"requestId": "r", "image": image})


@asynccontextmanager
async def serving(lister: ScrambledLister) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/ListImageBuildVersions", lister.list_build_versions)
    app.router.add_get("/GetImage", lister.get_image)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_every_page_is_listed_and_the_newest_build_wins_whatever_the_order() -> None:
    """Builds 4 and 5 were created in the same second: the higher build number wins.
    Taking the first item, stopping at the empty page, or comparing dates alone would
    all pick build 4; taking the last item, build 2."""
    build = {n: f"{VERSION}/{n}" for n in range(1, 6)}
    pages = [
        [summary(build[4], 3), summary(build[1], 0)],
        [],
        [summary(build[5], 3)],
        [summary(build[3], 2), summary(build[2], 1)],
    ]
    lister = ScrambledLister(pages)
    async with serving(lister) as url:
        done = await wait_on_virtual_time(url, VERSION, seconds=60, output="json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["images"][0]["build_arn"] == build[5]
    # One call per page, each naming the exact version (no filter), then the build.
    asked = {"imageVersionArn": VERSION, "maxResults": 25}
    assert lister.requests == [
        ("ListImageBuildVersions", asked),
        *(("ListImageBuildVersions", asked | {"nextToken": str(n)}) for n in (1, 2, 3)),
        ("GetImage", {"imageBuildVersionArn": build[5]}),
    ]


async def test_a_wildcard_lists_the_image_name_and_keeps_only_matching_versions() -> None:
    """`1.x.x` cannot go to imageVersionArn (its pattern has no `x`): the builds of the
    name are listed, one call per page. 2.0.0/1, the highest and newest, does not
    match; of those that do, 1.4.0/7 is the highest version, though 1.3.9/2 and
    0.9.0/4 were created after it."""
    other = [f"{VERSION.rsplit('/', 1)[0]}/{v}" for v in ("2.0.0/1", "1.3.9/2", "0.9.0/4")]
    pages = [
        [summary(f"{VERSION}/7", 1), summary(other[0], 5)],
        [summary(other[1], 2), summary(other[2], 4)],
    ]
    lister = ScrambledLister(pages)
    wildcard = VERSION.replace("1.4.0", "1.x.x")
    async with serving(lister) as url:
        done = await wait_on_virtual_time(url, wildcard, seconds=60, output="json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["images"][0]["build_arn"] == f"{VERSION}/7"
    asked = {"filters": [{"name": "name", "values": ["web-base"]}], "maxResults": 25}
    assert lister.requests == [
        ("ListImageBuildVersions", asked),
        ("ListImageBuildVersions", asked | {"nextToken": "1"}),
        ("GetImage", {"imageBuildVersionArn": f"{VERSION}/7"}),
    ]
