"""`ibwatch start` as CI runs it: it starts pipelines on the simulator, then waits
like `wait-until-available`. In-process (`tests/cli/in_thread.py`) where the exit
code and the output are what is checked; what a timeout leaves runs on virtual time
shared with the simulator (`start_on_virtual_time`), but for one real `ibwatch`
process with a real `--timeout` and `--cancel-on-timeout`, whose outcome does not
depend on how soon the first answer came."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import anyio

from tests.cli.in_thread import Ran, ibwatch
from tests.cli.support import IBWATCH
from tests.support import ACCOUNT, scenario, timeline
from watcher.simulator import Simulator
from watcher.start import StartRequest, start_pipelines
from watcher.testing import VirtualClock
from watcher.wait import WaitRequest

HEAD = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}"
PIPELINE = f"{HEAD}:image-pipeline/web-base-nightly"
OTHER = f"{HEAD}:image-pipeline/api-runtime"
VERSION = f"{HEAD}:image/web-base/1.4.0"
AMI = "ami-0a1b2c3d4e5f60718"


def pipelines(run: list[dict[str, Any]]) -> Any:
    return scenario(
        [],
        time_scale=60,  # a minute of build per real second
        pipelines=[
            {
                "arn": PIPELINE,
                "image": VERSION,
                "timeline": run,
                "amis": [{"region": "us-east-1", "image": AMI}],
            },
            {"arn": OTHER, "image": f"{HEAD}:image/api-runtime/2.0.3", "timeline": run},
        ],
    )


QUICK = timeline(("PENDING", 10), ("BUILDING", 20), ("AVAILABLE", None))
ENDLESS = timeline(("PENDING", 10), ("BUILDING", None))


async def ibwatch_start(simulator: Simulator, *args: str, env: dict[str, str] | None = None) -> Ran:
    """In-process, with `env` added to the environment."""
    return await ibwatch(
        "start", "--endpoint-url", simulator.endpoint_url, "--interval", "0.1s", *args, env=env
    )


async def ibwatch_start_process(
    simulator: Simulator, *args: str
) -> subprocess.CompletedProcess[str]:
    """As the real `ibwatch` program."""
    done = await anyio.run_process(
        [
            str(IBWATCH),
            "start",
            "--endpoint-url",
            simulator.endpoint_url,
            "--interval",
            "0.1s",
            *args,
        ],
        check=False,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def builds_of(simulator: Simulator) -> list[str]:
    return sorted(build.arn for build in simulator.catalog)


async def test_start_waits_for_the_new_build_and_exits_0_with_its_amis(tmp_path: Path) -> None:
    """And writes GITHUB_OUTPUT as `wait-until-available` does, after its client token."""
    outputs = tmp_path / "github_output"
    simulator = Simulator(pipelines(QUICK))
    async with simulator:
        done = await ibwatch_start(simulator, PIPELINE, env={"GITHUB_OUTPUT": str(outputs)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{VERSION}/1  AVAILABLE", f"  us-east-1  {AMI}"]
    assert f"ibwatch: started {VERSION}/1 from {PIPELINE}" in done.stderr
    lines = outputs.read_text().splitlines()
    token = done.stderr.split("client token ", 1)[1].split(":", 1)[0]
    assert lines[0] == f"client_token={token}", "written before the first call"
    values = dict(line.split("=", 1) for line in lines)
    assert (values["status"], values["exit_code"], values["build_arn"]) == (
        "AVAILABLE",
        "0",
        f"{VERSION}/1",
    )
    assert values["ami_us-east-1"] == AMI


async def test_the_printed_client_token_given_back_returns_the_same_build() -> None:
    """A retried CI job must not start a second build (StartImagePipelineExecution is
    idempotent on clientToken, botocore's model)."""
    simulator = Simulator(pipelines(ENDLESS))
    async with simulator:
        first = await ibwatch_start(simulator, "--no-wait", PIPELINE)
        token = first.stderr.split("client token ", 1)[1].split(":", 1)[0]
        again = await ibwatch_start(simulator, "--no-wait", "--client-token", token, PIPELINE)
        builds = builds_of(simulator)
    assert first.returncode == again.returncode == 0
    assert first.stdout == again.stdout == f"{VERSION}/1\n"
    assert builds == [f"{VERSION}/1"]


async def test_one_token_for_two_pipelines_starts_one_build_each_and_repeats_them() -> None:
    simulator = Simulator(pipelines(ENDLESS))
    async with simulator:
        first = await ibwatch_start(
            simulator, "--no-wait", "--client-token", "job-42", PIPELINE, OTHER
        )
        again = await ibwatch_start(
            simulator, "--no-wait", "--client-token", "job-42", PIPELINE, OTHER
        )
        builds = builds_of(simulator)
    assert first.returncode == again.returncode == 0, first.stderr
    assert first.stdout == again.stdout == f"{VERSION}/1\n{HEAD}:image/api-runtime/2.0.3/1\n"
    assert builds == [f"{HEAD}:image/api-runtime/2.0.3/1", f"{VERSION}/1"]


async def test_no_wait_prints_the_build_arn_and_writes_it_to_github_output(tmp_path: Path) -> None:
    outputs = tmp_path / "github_output"
    simulator = Simulator(pipelines(ENDLESS))
    async with simulator:
        done = await ibwatch_start(
            simulator, "--no-wait", PIPELINE, env={"GITHUB_OUTPUT": str(outputs)}
        )
    assert done.returncode == 0
    assert done.stdout == f"{VERSION}/1\n"
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert values["build_arn"] == f"{VERSION}/1"
    assert json.loads(values["build_arns"]) == [f"{VERSION}/1"]
    assert values["client_token"]


async def test_no_wait_with_two_pipelines_writes_both_build_arns_to_github_output(
    tmp_path: Path,
) -> None:
    """`build_arn` names the one build of one ARN, as a wait's output does; with two,
    it is empty and `build_arns` lists them (it was missing: a workflow had no output
    naming the builds it started)."""
    outputs = tmp_path / "github_output"
    simulator = Simulator(pipelines(ENDLESS))
    async with simulator:
        done = await ibwatch_start(
            simulator, "--no-wait", PIPELINE, OTHER, env={"GITHUB_OUTPUT": str(outputs)}
        )
    assert done.returncode == 0, done.stderr
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert values["build_arn"] == ""
    assert (
        json.loads(values["build_arns"])
        == done.stdout.split()
        == [
            f"{VERSION}/1",
            f"{HEAD}:image/api-runtime/2.0.3/1",
        ]
    )


async def test_cancel_on_timeout_cancels_the_running_build_and_exits_3() -> None:
    simulator = Simulator(pipelines(ENDLESS))
    async with simulator:
        done = await ibwatch_start_process(
            simulator, "--timeout", "1s", "--cancel-on-timeout", "--output", "json", PIPELINE
        )
    assert done.returncode == 3, done.stderr
    report = json.loads(done.stdout)
    (image,) = report["images"]
    assert (image["status"], image["cancelled_at_timeout"]) == ("CANCELLED", True)
    assert report["status"] == "TIMEOUT"
    assert f"ibwatch: timed out; cancelled {VERSION}/1" in done.stderr
    assert simulator.counters.requests["CancelImageCreation"] == 1


async def test_an_unknown_pipeline_exits_4_naming_it() -> None:
    simulator = Simulator(pipelines(QUICK))
    missing = PIPELINE.replace("web-base-nightly", "no-such-pipeline")
    async with simulator:
        done = await ibwatch_start(simulator, missing)
    assert done.returncode == 4
    assert f"ibwatch: could not start {missing}: ResourceNotFoundException" in done.stderr


async def test_a_pipeline_wildcard_or_an_image_arn_is_refused_before_any_call() -> None:
    simulator = Simulator(pipelines(QUICK))
    async with simulator:
        wildcard = await ibwatch_start(simulator, f"{HEAD}:image-pipeline/*")
        image = await ibwatch_start(simulator, f"{VERSION}/1")
    assert (wildcard.returncode, image.returncode) == (2, 2)
    assert "name one pipeline to start, not all of them" in wildcard.stderr
    assert "is not an image pipeline ARN" in image.stderr
    assert simulator.counters.requests["StartImagePipelineExecution"] == 0


async def test_a_client_token_too_long_for_the_api_is_refused_before_any_call() -> None:
    simulator = Simulator(pipelines(QUICK))
    async with simulator:
        done = await ibwatch_start(simulator, "--client-token", "x" * 65, PIPELINE)
    assert done.returncode == 2
    assert "--client-token must be 1 to 64 characters, got 65" in done.stderr


async def test_a_profile_that_does_not_exist_exits_2_before_starting_anything() -> None:
    """As wait-until-available does: the AWS configuration, not the pipeline, is wrong."""
    simulator = Simulator(pipelines(QUICK))
    async with simulator:
        done = await ibwatch_start(simulator, PIPELINE, env={"AWS_PROFILE": "nosuch"})
    assert done.returncode == 2, done.stderr
    assert "The config profile (nosuch) could not be found" in done.stderr
    assert simulator.counters.requests["StartImagePipelineExecution"] == 0


# --- on virtual time, shared with the simulator: what a timeout leaves is exact -------


async def start_on_virtual_time(
    runs: dict[str, list[dict[str, Any]]], *, seconds: float, cancel_on_timeout: bool
) -> tuple[Ran, Simulator]:
    """`ibwatch start --timeout SECONDS --interval 5s --output json PIPELINE...` as the
    command line runs it (`start_pipelines`), each pipeline of `runs` building its
    timeline, on a virtual clock the simulator shares."""
    clock = VirtualClock()
    plan = scenario(
        [],
        pipelines=[
            {"arn": arn, "image": f"{HEAD}:image/{arn.rsplit('/', 1)[1]}/1.0.0", "timeline": run}
            for arn, run in runs.items()
        ],
    )
    simulator = Simulator(plan, clock=clock)
    stdout, stderr = io.StringIO(), io.StringIO()
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        async with simulator as url:
            request = StartRequest(
                pipelines=tuple(runs),
                wait=WaitRequest(
                    arns=(), timeout=seconds, interval=5.0, endpoint_url=url, output="json"
                ),
                cancel_on_timeout=cancel_on_timeout,
            )
            code = await start_pipelines(request, clock=clock, stdout=stdout, stderr=stderr)
        group.cancel_scope.cancel()
    return Ran(code, stdout.getvalue(), stderr.getvalue()), simulator


async def test_cancel_on_timeout_cancels_only_the_builds_still_running() -> None:
    """One build is AVAILABLE at 30 s, the other still BUILDING at the 60 s timeout:
    only that one is cancelled, and the run still exits 3, not 0 or 1."""
    done, simulator = await start_on_virtual_time(
        {PIPELINE: QUICK, OTHER: ENDLESS}, seconds=60, cancel_on_timeout=True
    )
    assert done.returncode == 3, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "TIMEOUT"
    quick, endless = report["images"]
    assert (quick["status"], quick["cancelled_at_timeout"]) == ("AVAILABLE", False)
    assert (endless["status"], endless["cancelled_at_timeout"]) == ("CANCELLED", True)
    assert f"ibwatch: timed out; cancelled {endless['build_arn']}" in done.stderr
    assert "cancelled " + quick["build_arn"] not in done.stderr
    assert simulator.counters.requests["CancelImageCreation"] == 1


async def test_a_started_build_that_fails_exits_1() -> None:
    failing = timeline(("PENDING", 10), ("BUILDING", 20), ("FAILED", None))
    done, simulator = await start_on_virtual_time(
        {PIPELINE: failing}, seconds=600, cancel_on_timeout=True
    )
    assert done.returncode == 1, done.stderr
    (image,) = json.loads(done.stdout)["images"]
    assert (image["build_arn"], image["status"]) == (
        f"{HEAD}:image/web-base-nightly/1.0.0/1",
        "FAILED",
    )
    assert simulator.counters.requests["CancelImageCreation"] == 0, "it ended before the timeout"


async def test_without_cancel_on_timeout_the_build_is_left_running() -> None:
    """On virtual time: as a real process with a real one-second timeout, a loaded
    machine could spend the second before the first answer (it did)."""
    done, simulator = await start_on_virtual_time(
        {PIPELINE: ENDLESS}, seconds=60, cancel_on_timeout=False
    )
    assert done.returncode == 3
    (image,) = json.loads(done.stdout)["images"]
    assert (image["status"], image["cancelled_at_timeout"]) == ("BUILDING", False)
    assert simulator.counters.requests["CancelImageCreation"] == 0
