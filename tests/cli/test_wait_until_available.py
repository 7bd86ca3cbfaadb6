"""`ibwatch wait-until-available` as CI runs it, against the simulator: in-process
(`tests/cli/in_thread.py`) where the exit code and the output are what is checked,
and as a real subprocess for what only a process shows: its exit status (0 and 1)
and GITHUB_OUTPUT from its inherited environment (two tests)."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import anyio
import botocore.session
import pytest

from tests.cli.in_thread import Ran, ibwatch
from tests.support import ACCOUNT, scenario, timeline, web_base_image
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


async def test_a_version_whose_newest_build_fails_exits_1_despite_an_older_available() -> None:
    """The bug a CI gate must never have: passing on the failing build's predecessor."""
    done, _ = await ibwatch_wait(
        old_available_and_newer(FAILED_STEP), VERSION, "--output", "json", after=2
    )
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    (image,) = report["images"]
    assert (image["arn"], image["build_arn"], image["status"]) == (
        VERSION,
        f"{VERSION}/7",
        "FAILED",
    )


async def test_a_version_whose_newest_build_succeeds_exits_0_with_its_own_amis() -> None:
    newer = {"status": "AVAILABLE", "amis": [{"region": "us-east-1", "image": NEWER_AMI}]}
    done, _ = await ibwatch_wait(old_available_and_newer(newer), VERSION, after=2)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{VERSION}/7  AVAILABLE",
        f"  us-east-1  {NEWER_AMI}",
    ]


async def test_a_wildcard_version_resolves_to_the_newest_matching_build() -> None:
    """`1.x.x`: every build of the image name is listed, matched here, newest created wins."""
    plan = scenario(
        [
            web_base_image(arn=f"{VERSION}/7", timeline=timeline(("AVAILABLE", None))),
            web_base_image(arn=WEB.replace("1.4.0/7", "1.3.9/2"), start=5, timeline=[FAILED_STEP]),
            web_base_image(
                arn=WEB.replace("1.4.0/7", "2.0.0/1"),
                start=9,
                timeline=timeline(("AVAILABLE", None)),
            ),
        ],
    )
    wildcard = WEB.replace("1.4.0/7", "1.x.x")
    done, simulator = await ibwatch_wait(plan, "--output", "json", wildcard, after=10)
    report = json.loads(done.stdout)
    assert report["images"][0]["build_arn"] == WEB.replace("1.4.0/7", "1.3.9/2")
    assert done.returncode == 1
    assert simulator.counters.requests["ListImageBuildVersions"] >= 1


async def test_a_version_without_a_build_keeps_looking_then_exits_3_saying_so() -> None:
    simulator = Simulator(accounts())
    async with simulator as url:
        done = await wait_on_virtual_time(url, VERSION.replace("web-base", "unbuilt"), seconds=1)
    assert done.returncode == 3
    assert done.stdout.splitlines() == [
        f"{VERSION.replace('web-base', 'unbuilt')}  TIMEOUT  "
        f"(no build of {VERSION.replace('web-base', 'unbuilt')} yet)"
    ]
    assert simulator.counters.requests["ListImageBuildVersions"] >= 2, "it kept looking"
    assert simulator.counters.requests["GetImage"] == 0


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


async def test_the_aws_clis_client_shows_why_a_version_is_listed_not_got() -> None:
    """botocore's synchronous client (the AWS CLI's) on the same scenario: GetImage on the
    version answers the old AVAILABLE build, ListImageBuildVersions shows the newer
    FAILED one, which `wait-until-available VERSION` therefore waits on (exit 1 above)."""
    clock = FakeClock()
    simulator = Simulator(old_available_and_newer(FAILED_STEP), clock=clock)

    def call(url: str) -> tuple[str, list[tuple[str, str]]]:
        client = botocore.session.get_session().create_client(
            "imagebuilder",
            region_name="us-east-1",
            endpoint_url=url,
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="not-a-secret",
        )
        try:
            got = client.get_image(imageBuildVersionArn=VERSION)["image"]["arn"]
            listed = client.list_image_build_versions(imageVersionArn=VERSION)
            return got, [(s["arn"], s["state"]["status"]) for s in listed["imageSummaryList"]]
        finally:
            client.close()

    async with simulator as url:
        clock.advance(2)
        got, listed = await anyio.to_thread.run_sync(call, url)
    assert got == f"{VERSION}/6"
    assert sorted(listed) == [(f"{VERSION}/6", "AVAILABLE"), (f"{VERSION}/7", "FAILED")]


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
