"""`ibwatch start` as CI runs it: it starts pipelines on the simulator, then waits
like `wait-until-available`. In-process (`tests/cli/in_thread.py`) where the exit
code and the output are what is checked; the two tests that wait for a real
`--timeout` run the real `ibwatch` program: a busy test process could spend that
second before the first answer."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import anyio

from tests.cli.in_thread import Ran, ibwatch
from tests.cli.support import IBWATCH
from tests.support import ACCOUNT, scenario, timeline
from watcher.simulator import Simulator

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


async def test_start_waits_for_the_new_build_and_exits_0_with_its_amis() -> None:
    simulator = Simulator(pipelines(QUICK))
    async with simulator:
        done = await ibwatch_start(simulator, PIPELINE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{VERSION}/1  AVAILABLE", f"  us-east-1  {AMI}"]
    assert f"ibwatch: started {VERSION}/1 from {PIPELINE}" in done.stderr


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
    assert first.stdout == again.stdout
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
    assert values["client_token"]


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


async def test_without_cancel_on_timeout_the_build_is_left_running() -> None:
    simulator = Simulator(pipelines(ENDLESS))
    async with simulator:
        done = await ibwatch_start_process(simulator, "--timeout", "1s", PIPELINE)
    assert done.returncode == 3
    assert "BUILDING  (still in progress at the timeout)" in done.stdout
    assert simulator.counters.requests["CancelImageCreation"] == 0


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
