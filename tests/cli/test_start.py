"""`ibwatch start` as CI runs it: it starts pipelines on the simulator, then waits
like `wait-until-available`. In-process (`tests/cli/in_thread.py`) where the exit
code and the output are what is checked; what a timeout leaves runs on virtual time
shared with the simulator (`start_on_virtual_time`), but for one real `ibwatch`
process with a real `--timeout` and `--cancel-on-timeout`, whose outcome does not
depend on how soon the first answer came."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any, Literal

import anyio
import pytest

from tests.cli.in_thread import Ran, ibwatch
from tests.cli.support import IBWATCH
from tests.cli.test_interrupts import read_stderr_until
from tests.support import ACCOUNT, WEB_BASE, scenario, timeline, web_base_image
from watcher.result_files import ResultFiles
from watcher.simulator import Simulator
from watcher.simulator.scenario import Faults
from watcher.start import CANCEL_WAIT, StartRequest, start_pipelines, token_for
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
    idempotent on clientToken, botocore's model). With a token given, the answer is
    the same whether the build is new or not, and the line says so."""
    simulator = Simulator(pipelines(ENDLESS))
    async with simulator:
        first = await ibwatch_start(simulator, "--no-wait", PIPELINE)
        token = first.stderr.split("client token ", 1)[1].split(":", 1)[0]
        again = await ibwatch_start(simulator, "--no-wait", "--client-token", token, PIPELINE)
        builds = builds_of(simulator)
    assert first.returncode == again.returncode == 0
    assert first.stdout == again.stdout == f"{VERSION}/1\n"
    assert builds == [f"{VERSION}/1"]
    assert f"ibwatch: started {VERSION}/1 from {PIPELINE}" in first.stderr
    assert (
        f"ibwatch: {PIPELINE}: build {VERSION}/1 (started now, or before with this client token)"
        in again.stderr
    )


async def test_one_token_for_two_pipelines_starts_one_build_each_and_repeats_them() -> None:
    """In any order: each pipeline's token is derived from the token and its own ARN."""
    simulator = Simulator(pipelines(ENDLESS))
    async with simulator:
        first = await ibwatch_start(
            simulator, "--no-wait", "--client-token", "job-42", PIPELINE, OTHER
        )
        again = await ibwatch_start(
            simulator, "--no-wait", "--client-token", "job-42", OTHER, PIPELINE
        )
        builds = builds_of(simulator)
    assert first.returncode == again.returncode == 0, first.stderr
    assert first.stdout == f"{VERSION}/1\n{HEAD}:image/api-runtime/2.0.3/1\n"
    assert again.stdout == f"{HEAD}:image/api-runtime/2.0.3/1\n{VERSION}/1\n"
    assert builds == [f"{HEAD}:image/api-runtime/2.0.3/1", f"{VERSION}/1"]


async def test_a_pipeline_named_alone_after_being_one_of_several_starts_a_new_build() -> None:
    """What the rerun hint warns of (`token_for`): alone, a pipeline gets the token as
    given, not the one derived for it among several."""
    simulator = Simulator(pipelines(ENDLESS))
    async with simulator:
        await ibwatch_start(simulator, "--no-wait", "--client-token", "t", PIPELINE, OTHER)
        alone = await ibwatch_start(simulator, "--no-wait", "--client-token", "t", PIPELINE)
    assert alone.stdout == f"{VERSION}/2\n"


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
    # As a wait's outputs have them; STARTED is no build status, so no `if:` mistakes it.
    assert (values["status"], values["exit_code"]) == ("STARTED", "0")


async def test_no_wait_with_json_output_prints_one_document_mapping_builds_to_pipelines(
    tmp_path: Path,
) -> None:
    outputs = tmp_path / "github_output"
    simulator = Simulator(pipelines(ENDLESS))
    async with simulator:
        done = await ibwatch_start(
            simulator,
            "--no-wait",
            "--output",
            "json",
            "--client-token",
            "job-7",
            PIPELINE,
            OTHER,
            env={"GITHUB_OUTPUT": str(outputs)},
        )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "status": "STARTED",
        "exit_code": 0,
        "client_token": "job-7",
        "builds": [
            {"pipeline_arn": PIPELINE, "build_arn": f"{VERSION}/1"},
            {"pipeline_arn": OTHER, "build_arn": f"{HEAD}:image/api-runtime/2.0.3/1"},
        ],
        "errors": [],
    }
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert (values["status"], values["exit_code"], values["build_arn"]) == ("STARTED", "0", "")


@pytest.mark.parametrize(
    "option",
    [
        ["--cancel-on-timeout"],
        ["--timeout", "5m"],
        ["--log-lines", "20"],
        ["--timeout", "2h"],
        ["--log-lines", "0"],
    ],
)
async def test_no_wait_with_an_option_of_the_wait_is_refused_naming_it(option: list[str]) -> None:
    """It would be ignored without a word: --no-wait --cancel-on-timeout cancels nothing.
    Given at all, even at the value the wait would use (`--timeout 2h` passed before)."""
    simulator = Simulator(pipelines(ENDLESS))
    async with simulator:
        done = await ibwatch_start(simulator, "--no-wait", *option, PIPELINE)
    assert done.returncode == 2
    assert f"ibwatch: {option[0]} acts on the wait, and --no-wait does not wait" in done.stderr
    assert simulator.counters.requests["StartImagePipelineExecution"] == 0


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
    assert f"ibwatch: cannot start {missing}: ResourceNotFoundException" in done.stderr


async def test_an_unknown_pipeline_after_a_known_one_starts_neither(tmp_path: Path) -> None:
    """Every pipeline is read first (GetImagePipeline, one call each): a typo in the
    second must not leave the first one's build running with nothing watching it."""
    outputs = tmp_path / "github_output"
    simulator = Simulator(pipelines(QUICK))
    missing = PIPELINE.replace("web-base-nightly", "no-such-pipeline")
    async with simulator:
        done = await ibwatch_start(
            simulator, PIPELINE, missing, env={"GITHUB_OUTPUT": str(outputs)}
        )
        builds = builds_of(simulator)
    assert done.returncode == 4, done.stderr
    assert f"ibwatch: cannot start {missing}: ResourceNotFoundException" in done.stderr
    assert "ibwatch: nothing was started" in done.stderr
    assert builds == []
    requests = simulator.counters.requests
    assert (requests["GetImagePipeline"], requests["StartImagePipelineExecution"]) == (2, 0)
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert (values["status"], values["build_arn"], values["build_arns"]) == ("ERROR", "", "[]")
    assert [error["arn"] for error in json.loads(values["errors"])] == [missing]


async def test_a_pipeline_that_cannot_be_read_starts_nothing() -> None:
    """AccessDenied on GetImagePipeline (the CI policy grants it with the start)."""
    plan = pipelines(QUICK).model_copy(
        update={
            "faults": Faults.model_validate(
                {
                    "outages": [
                        {
                            "code": "ForbiddenException",
                            "end": "1h",
                            "operations": ["GetImagePipeline"],
                        }
                    ]
                }
            )
        }
    )
    simulator = Simulator(plan)
    async with simulator:
        done = await ibwatch_start(simulator, PIPELINE)
    assert done.returncode == 4, done.stderr
    assert f"ibwatch: cannot start {PIPELINE}: ForbiddenException" in done.stderr
    assert simulator.counters.requests["StartImagePipelineExecution"] == 0


async def test_a_start_refused_after_another_started_names_no_single_build_and_how_to_rerun(
    tmp_path: Path,
) -> None:
    """The second pipeline's derived token was used before on the first pipeline, so
    its start is refused (IdempotentParameterMismatchException) after the first one
    started: exit 4, `build_arn` empty (two pipelines were given, so no build is *the*
    build), `build_arns` names the one started, and the hint says to rerun the whole
    command with the token, never one pipeline alone."""
    outputs, summary = tmp_path / "github_output", tmp_path / "summary.md"
    simulator = Simulator(pipelines(ENDLESS))
    async with simulator:
        simulator.start_pipeline(PIPELINE, client_token=token_for("job-42", OTHER, 2))
        done = await ibwatch_start(
            simulator,
            "--summary",
            str(summary),
            "--client-token",
            "job-42",
            PIPELINE,
            OTHER,
            env={"GITHUB_OUTPUT": str(outputs)},
        )
    assert done.returncode == 4, done.stderr
    assert f"ibwatch: could not start {OTHER}: IdempotentParameterMismatchException" in (
        done.stderr
    )
    hint = "run the same command again (the same 2 pipelines) with --client-token job-42"
    assert f"ibwatch: already started, and nothing waits for them: {VERSION}/2; {hint}" in (
        done.stderr
    )
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert (values["status"], values["exit_code"], values["build_arn"]) == ("ERROR", "4", "")
    assert json.loads(values["build_arns"]) == [f"{VERSION}/2"]
    text = summary.read_text()
    assert "name the same 2 pipelines" in text
    assert "`job-42`" in text


async def test_no_wait_refused_after_one_start_writes_error_and_the_build_started(
    tmp_path: Path,
) -> None:
    """--no-wait whose second start is refused after the first started: GITHUB_OUTPUT
    still gets the status (ERROR), the exit code, the build started and the client
    token, and `--output json` its one document, with the error (before: nothing but
    `client_token`, and no document)."""
    outputs = tmp_path / "github_output"
    simulator = Simulator(pipelines(ENDLESS))
    async with simulator:
        simulator.start_pipeline(PIPELINE, client_token=token_for("job-42", OTHER, 2))
        done = await ibwatch_start(
            simulator,
            "--no-wait",
            "--output",
            "json",
            "--client-token",
            "job-42",
            PIPELINE,
            OTHER,
            env={"GITHUB_OUTPUT": str(outputs)},
        )
    assert done.returncode == 4, done.stderr
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert (values["status"], values["exit_code"], values["build_arn"]) == ("ERROR", "4", "")
    assert json.loads(values["build_arns"]) == [f"{VERSION}/2"]
    assert values["client_token"] == "job-42"
    document = json.loads(done.stdout)
    assert {k: v for k, v in document.items() if k != "errors"} == {
        "status": "ERROR",
        "exit_code": 4,
        "client_token": "job-42",
        "builds": [{"pipeline_arn": PIPELINE, "build_arn": f"{VERSION}/2"}],
    }
    ((error,),) = [document["errors"]]
    assert error["arn"] == OTHER
    assert "IdempotentParameterMismatchException" in error["message"]


@pytest.mark.parametrize("output", ["text", "json"])
async def test_no_wait_on_an_unknown_pipeline_writes_error_to_github_output(
    tmp_path: Path, output: str
) -> None:
    outputs = tmp_path / "github_output"
    missing = PIPELINE.replace("web-base-nightly", "no-such-pipeline")
    simulator = Simulator(pipelines(ENDLESS))
    async with simulator:
        done = await ibwatch_start(
            simulator,
            "--no-wait",
            "--output",
            output,
            missing,
            env={"GITHUB_OUTPUT": str(outputs)},
        )
    assert done.returncode == 4, done.stderr
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert (values["status"], values["exit_code"], values["build_arns"]) == ("ERROR", "4", "[]")
    assert values["client_token"]
    assert [error["arn"] for error in json.loads(values["errors"])] == [missing]
    if output == "json":
        document = json.loads(done.stdout)
        assert (document["status"], document["exit_code"], document["builds"]) == ("ERROR", 4, [])
        assert document["client_token"] == values["client_token"]
        assert [error["arn"] for error in document["errors"]] == [missing]
    else:
        assert done.stdout == ""


async def test_no_wait_with_a_bad_pipeline_arn_writes_error_to_github_output(
    tmp_path: Path,
) -> None:
    """Refused after parsing, before any call (exit 2): the outputs and the document
    say so, naming the ARN."""
    outputs = tmp_path / "github_output"
    bad = f"{HEAD}:image-pipeline/Bad"
    simulator = Simulator(pipelines(ENDLESS))
    async with simulator:
        done = await ibwatch_start(
            simulator, "--no-wait", "--output", "json", bad, env={"GITHUB_OUTPUT": str(outputs)}
        )
    assert done.returncode == 2, done.stderr
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert (values["status"], values["exit_code"], values["build_arns"]) == ("ERROR", "2", "[]")
    assert [error["arn"] for error in json.loads(values["errors"])] == [bad]
    document = json.loads(done.stdout)
    assert (document["status"], document["exit_code"], document["builds"]) == ("ERROR", 2, [])
    assert [error["arn"] for error in document["errors"]] == [bad]
    assert simulator.counters.requests["GetImagePipeline"] == 0


async def test_a_pipeline_wildcard_or_an_image_arn_is_refused_before_any_call() -> None:
    simulator = Simulator(pipelines(QUICK))
    async with simulator:
        wildcard = await ibwatch_start(simulator, f"{HEAD}:image-pipeline/*")
        image = await ibwatch_start(simulator, f"{VERSION}/1")
    assert (wildcard.returncode, image.returncode) == (2, 2)
    assert "name one pipeline to start, not all of them" in wildcard.stderr
    assert "names an image, not an image pipeline" in image.stderr
    assert "use `ibwatch wait-until-available`" in image.stderr
    assert "image-pipeline/*" not in image.stderr, "start refuses what it would suggest"
    assert simulator.counters.requests["StartImagePipelineExecution"] == 0


async def test_a_pipeline_arn_in_upper_case_says_arns_are_lower_case() -> None:
    """The model's ImagePipelineArn pattern: `...:image-pipeline/[a-z0-9-_]+$`."""
    simulator = Simulator(pipelines(QUICK))
    async with simulator:
        done = await ibwatch_start(simulator, f"{HEAD}:image-pipeline/Web-Base-Nightly")
    assert done.returncode == 2
    assert "pipeline ARNs name the pipeline in lower case" in done.stderr
    assert "has an ARN ending image-pipeline/web-base-nightly" in done.stderr
    assert "image-pipeline/*" not in done.stderr


async def test_a_client_token_too_long_for_the_api_is_refused_before_any_call() -> None:
    simulator = Simulator(pipelines(QUICK))
    async with simulator:
        done = await ibwatch_start(simulator, "--client-token", "x" * 65, PIPELINE)
    assert done.returncode == 2
    assert "--client-token must be 1 to 64 characters, got 65" in done.stderr


@pytest.mark.parametrize("token", ["job-1\nstatus=AVAILABLE", "job\r1", "job\t1", "job\x7f"])
async def test_a_client_token_with_a_control_character_is_refused_before_any_call(
    tmp_path: Path, token: str
) -> None:
    """The model's ClientToken is 1-64 characters with no pattern; a line break would be
    written as is into GITHUB_OUTPUT (here, a forged `status=AVAILABLE` line)."""
    outputs = tmp_path / "github_output"
    simulator = Simulator(pipelines(QUICK))
    async with simulator:
        done = await ibwatch_start(
            simulator, "--client-token", token, PIPELINE, env={"GITHUB_OUTPUT": str(outputs)}
        )
    assert done.returncode == 2
    assert "ibwatch: --client-token must not hold control characters" in done.stderr
    assert simulator.counters.requests["GetImagePipeline"] == 0
    assert "status=AVAILABLE" not in outputs.read_text()


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
    runs: dict[str, list[dict[str, Any]]],
    *,
    seconds: float,
    cancel_on_timeout: bool,
    cancel_takes: str | None = None,
    output: Literal["text", "json"] = "json",
    files: ResultFiles | None = None,
    log_lines: int = 0,
    max_tps: float = 5.0,
    faults: dict[str, Any] | None = None,
    interval: float = 5.0,
) -> tuple[Ran, Simulator]:
    """`ibwatch start --timeout SECONDS --interval 5s --output json PIPELINE...` as the
    command line runs it (`start_pipelines`), each pipeline of `runs` building its
    timeline, on a virtual clock the simulator shares; a cancellation lands
    `cancel_takes` after it is asked for (default: the simulator's)."""
    clock = VirtualClock()
    plan = scenario(
        [],
        pipelines=[
            {"arn": arn, "image": f"{HEAD}:image/{arn.rsplit('/', 1)[1]}/1.0.0", "timeline": run}
            for arn, run in runs.items()
        ],
        **({} if cancel_takes is None else {"cancel_takes": cancel_takes}),
        **({} if faults is None else {"faults": faults}),
    )
    simulator = Simulator(plan, clock=clock)
    stdout, stderr = io.StringIO(), io.StringIO()
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        async with simulator as url:
            request = StartRequest(
                pipelines=tuple(runs),
                wait=WaitRequest(
                    arns=(),
                    timeout=seconds,
                    interval=interval,
                    endpoint_url=url,
                    output=output,
                    files=files,
                    log_lines=log_lines,
                    max_tps=max_tps,
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


async def test_cancel_on_timeout_waits_until_the_cancellation_has_taken_effect() -> None:
    """CancelImageCreation is asynchronous (botocore's model): here it lands 40 s after
    the call, and the result says CANCELLED only because the build was polled until it
    showed it, every 5 s as before the timeout."""
    done, simulator = await start_on_virtual_time(
        {PIPELINE: ENDLESS}, seconds=60, cancel_on_timeout=True, cancel_takes="40s"
    )
    assert done.returncode == 3, done.stderr
    report = json.loads(done.stdout)
    (image,) = report["images"]
    assert (image["status"], image["cancelled_at_timeout"], image["cancel_requested"]) == (
        "CANCELLED",
        True,
        True,
    )
    assert report["status"] == "TIMEOUT"
    build = image["build_arn"]
    assert f"ibwatch: timed out; cancelling {build}" in done.stderr
    assert f"ibwatch: timed out; cancelled {build}" in done.stderr
    cancelled = simulator.catalog.get(build)
    assert cancelled is not None
    landed = cancelled.entered("CANCELLED")
    assert landed == pytest.approx(100, abs=1), "asked for at the 60 s timeout, 40 s to land"
    # Polled at the interval after the timeout as before it, and no longer than needed.
    assert simulator.counters.requests["GetImage"] <= 60 / 5 + 40 / 5 + 2


async def test_a_cancellation_still_under_way_after_the_wait_is_reported_as_requested() -> None:
    """It lands 10 minutes later, after CANCEL_WAIT: the result says the build is still
    BUILDING, the cancellation asked for and not in effect; exit 3 all the same."""
    done, _ = await start_on_virtual_time(
        {PIPELINE: ENDLESS}, seconds=60, cancel_on_timeout=True, cancel_takes="10m"
    )
    assert done.returncode == 3, done.stderr
    report = json.loads(done.stdout)
    (image,) = report["images"]
    assert (image["status"], image["cancelled_at_timeout"], image["cancel_requested"]) == (
        "BUILDING",
        False,
        True,
    )
    assert report["status"] == "TIMEOUT"
    assert (
        f"ibwatch: cancellation of {image['build_arn']} was requested, but it was still "
        "BUILDING after 2m00s"
    ) in done.stderr
    assert CANCEL_WAIT == 120


async def test_the_text_result_says_a_cancellation_is_not_yet_in_effect() -> None:
    done, _ = await start_on_virtual_time(
        {PIPELINE: ENDLESS},
        seconds=60,
        cancel_on_timeout=True,
        cancel_takes="10m",
        output="text",
    )
    assert done.returncode == 3
    assert done.stdout.splitlines() == [
        f"{HEAD}:image/web-base-nightly/1.0.0/1  BUILDING  (still in progress at the timeout)"
        "  (cancellation requested, not yet in effect)"
    ]


async def test_a_build_that_ends_before_its_cancellation_lands_keeps_its_end() -> None:
    """AVAILABLE 10 s after the timeout, before the cancellation lands at 30 s: every
    build is AVAILABLE, so exit 0 (0 iff every build is AVAILABLE; CancelImageCreation
    leaves what the build created: "Output resources that the build already created,
    such as AMIs and snapshots, aren't removed"), and stderr says the cancellation came
    too late. Here beside a build CANCELLED at the timeout, which makes it exit 3."""
    ends_late = timeline(("BUILDING", 70), ("AVAILABLE", None))
    done, _ = await start_on_virtual_time(
        {PIPELINE: ends_late, OTHER: ENDLESS},
        seconds=60,
        cancel_on_timeout=True,
        cancel_takes="30s",
    )
    assert done.returncode == 3, done.stderr
    report = json.loads(done.stdout)
    assert (report["status"], report["timed_out"]) == ("TIMEOUT", True)
    late, endless = report["images"]
    assert (late["status"], late["cancelled_at_timeout"], late["cancel_requested"]) == (
        "AVAILABLE",
        False,
        True,
    )
    assert (endless["status"], endless["cancelled_at_timeout"]) == ("CANCELLED", True)
    assert (
        f"ibwatch: {late['build_arn']} ended AVAILABLE before its cancellation took effect: "
        "the cancellation came too late, and its outputs are kept"
    ) in done.stderr


async def test_a_build_that_ends_available_during_the_cancel_wait_exits_0(
    tmp_path: Path,
) -> None:
    """The only build ends AVAILABLE 10 s after the timeout, before its cancellation
    lands: exit 0, and every file agrees (no "timeout" above an all-AVAILABLE table),
    each saying the cancellation came too late."""
    ends_late = timeline(("BUILDING", 70), ("AVAILABLE", None))
    files = ResultFiles(
        github_output=tmp_path / "github_output",
        dotenv=tmp_path / "ibwatch.env",
        summary=tmp_path / "summary.md",
    )
    done, _ = await start_on_virtual_time(
        {PIPELINE: ends_late},
        seconds=60,
        cancel_on_timeout=True,
        cancel_takes="30s",
        files=files,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["status"], report["exit_code"], report["timed_out"]) == ("AVAILABLE", 0, False)
    (image,) = report["images"]
    assert (image["status"], image["cancel_requested"]) == ("AVAILABLE", True)
    assert "the cancellation came too late, and its outputs are kept" in done.stderr
    outputs = dict(
        line.split("=", 1) for line in (tmp_path / "github_output").read_text().splitlines()
    )
    assert (outputs["status"], outputs["exit_code"]) == ("AVAILABLE", "0")
    dotenv = (tmp_path / "ibwatch.env").read_text()
    assert "IBWATCH_STATUS=AVAILABLE\n" in dotenv
    assert "IBWATCH_EXIT_CODE=0\n" in dotenv
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("### Image Builder: AVAILABLE\n")
    assert "exit code" not in summary
    assert "AVAILABLE (ended before the cancellation asked for at the timeout took effect)" in (
        summary
    )


async def test_a_build_that_fails_during_the_cancel_wait_exits_1_with_its_diagnostics() -> None:
    """FAILED on its own 10 s after the timeout, before its cancellation lands: a
    failure, exit 1 (1 over 3), explained as any FAILED build is: the workflow step,
    the log group, the console link and the --log-lines tail, gathered when the cancel
    wait's poll saw it FAILED."""
    fails_late = timeline(("BUILDING", 70), ("FAILED", None))
    done, _ = await start_on_virtual_time(
        {PIPELINE: fails_late},
        seconds=60,
        cancel_on_timeout=True,
        cancel_takes="30s",
        log_lines=5,
    )
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert (report["status"], report["exit_code"]) == ("FAILED", 1)
    (image,) = report["images"]
    assert (image["status"], image["cancel_requested"], image["cancelled_at_timeout"]) == (
        "FAILED",
        True,
        False,
    )
    assert image["failed_workflow_step"] is not None
    assert image["failed_workflow_step"]["name"]
    assert image["log_group"]
    assert image["console_url"]
    assert image["log_tail"]
    assert f"ibwatch: {image['build_arn']} ended FAILED before its cancellation" in done.stderr


async def test_the_result_names_the_pipeline_each_build_came_from() -> None:
    """`pipeline_arn` in each image of the JSON result (null for wait-until-available,
    which starts nothing: the next test)."""
    done, _ = await start_on_virtual_time(
        {PIPELINE: QUICK, OTHER: QUICK}, seconds=600, cancel_on_timeout=False
    )
    assert done.returncode == 0, done.stderr
    images = json.loads(done.stdout)["images"]
    assert [(i["build_arn"], i["pipeline_arn"]) for i in images] == [
        (f"{HEAD}:image/web-base-nightly/1.0.0/1", PIPELINE),
        (f"{HEAD}:image/api-runtime/1.0.0/1", OTHER),
    ]


async def test_wait_until_available_names_no_pipeline() -> None:
    simulator = Simulator(scenario([web_base_image(timeline=timeline(("AVAILABLE", None)))]))
    async with simulator:
        done = await ibwatch(
            "wait-until-available",
            "--endpoint-url",
            simulator.endpoint_url,
            "--output",
            "json",
            WEB_BASE,
        )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["images"][0]["pipeline_arn"] is None


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


class StampedLines(io.StringIO):
    """stderr that notes the clock's time of each line written."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock
        self.stamped: list[tuple[float, str]] = []

    def write(self, text: str) -> int:
        self.stamped += [(self._clock.monotonic(), line) for line in text.splitlines()]
        return super().write(text)


async def test_the_cancel_calls_are_inside_the_cancel_waits_bound() -> None:
    """Eight builds still running at the timeout, at --max-tps 0.05 (one call per 20 s):
    the eight cancel calls alone would take 160 s. The run still ends within the
    timeout and CANCEL_WAIT; the builds not reached by then are reported as still
    running, with no cancellation requested, and stderr says so."""
    clock = VirtualClock()
    arns = [f"{HEAD}:image-pipeline/pipe{i}" for i in range(8)]
    plan = scenario(
        [],
        cancel_takes="10m",
        pipelines=[
            {"arn": arn, "image": f"{HEAD}:image/pipe{i}/1.0.0", "timeline": ENDLESS}
            for i, arn in enumerate(arns)
        ],
    )
    simulator = Simulator(plan, clock=clock)
    stdout, stderr = io.StringIO(), StampedLines(clock)
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        async with simulator as url:
            request = StartRequest(
                pipelines=tuple(arns),
                wait=WaitRequest(
                    arns=(),
                    timeout=60,
                    interval=5.0,
                    endpoint_url=url,
                    output="json",
                    max_tps=0.05,
                ),
                cancel_on_timeout=True,
            )
            code = await start_pipelines(request, clock=clock, stdout=stdout, stderr=stderr)
            ended = clock.monotonic()
        group.cancel_scope.cancel()
    assert code == 3, stderr.getvalue()
    waiting_from = max(at for at, line in stderr.stamped if line.startswith("ibwatch: started"))
    assert ended - waiting_from <= 60 + CANCEL_WAIT + 1
    images = json.loads(stdout.getvalue())["images"]
    asked = [image for image in images if image["cancel_requested"]]
    left = [image for image in images if not image["cancel_requested"]]
    assert asked, "some were cancelled within the bound"
    assert left, "and some could not be, at one call per 20 s"
    assert simulator.counters.requests["CancelImageCreation"] == len(asked)
    for image in left:
        assert image["status"] in (None, "PENDING", "BUILDING")
        assert (
            f"ibwatch: timed out; no time left to cancel {image['build_arn']} within 2m00s: "
            "left running"
        ) in stderr.getvalue()


async def test_a_signal_during_the_cancel_wait_ends_it_and_reports_the_result_so_far(
    tmp_path: Path,
) -> None:
    """A real `ibwatch start --cancel-on-timeout` whose cancellation never lands
    (`cancel_takes = "1h"`), sent SIGTERM once stderr says it is cancelling: it stops
    waiting at once and hands on the result so far (timed out, the build, its
    cancellation requested, interrupted by SIGTERM), exit 143; not the empty
    "no result" it wrote when the signal came after the wait."""
    signum, code = signal.SIGTERM, 143
    outputs, summary = tmp_path / "github_output", tmp_path / "summary.md"
    plan = scenario(
        [],
        time_scale=60,
        cancel_takes="1h",
        pipelines=[{"arn": PIPELINE, "image": VERSION, "timeline": ENDLESS}],
    )
    async with Simulator(plan) as url:
        command = [
            str(IBWATCH),
            "start",
            "--endpoint-url",
            url,
            "--interval",
            "0.2s",
            "--timeout",
            "1s",
            "--cancel-on-timeout",
            "--output",
            "json",
            "--summary",
            str(summary),
            PIPELINE,
        ]
        env = {**os.environ, "GITHUB_OUTPUT": str(outputs)}
        async with await anyio.open_process(command, env=env) as process:
            seen: list[str] = []
            await read_stderr_until(process, "ibwatch: timed out; cancelling", seen)
            process.send_signal(signum)
            with anyio.fail_after(20):
                exited = await process.wait()
            assert process.stdout is not None
            assert process.stderr is not None
            stdout = b"".join([chunk async for chunk in process.stdout]).decode()
            rest = b"".join([chunk async for chunk in process.stderr]).decode()
    stderr = "".join(seen) + rest
    name = signal.Signals(signum).name
    assert exited == code, stderr
    report = json.loads(stdout)
    assert (report["status"], report["exit_code"], report["timed_out"]) == (
        "INTERRUPTED",
        code,
        True,
    )
    assert report["interrupted"] == name
    (image,) = report["images"]
    assert image["build_arn"] == f"{VERSION}/1"
    assert (image["cancel_requested"], image["cancelled_at_timeout"]) == (True, False)
    assert image["status"] in (None, "PENDING", "BUILDING")
    assert f"ibwatch: {name} came after the timeout; reporting the result so far" in stderr
    assert "Traceback" not in stderr
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert (values["status"], values["exit_code"]) == ("INTERRUPTED", str(code))
    assert json.loads(values["images"])[0]["build_arn"] == f"{VERSION}/1"
    assert "no result" not in summary.read_text()


async def test_a_build_that_ends_just_before_its_cancel_call_is_read_again_and_exits_0() -> None:
    """AVAILABLE at 30 s, after the last poll before the 60 s timeout (the first, at the
    start: the next is 90 s or more away with a 100 s interval, jitter included):
    CancelImageCreation is refused (ResourceInUseException, the build is no longer in
    progress), and the build is read again, so what it ended as decides the exit code,
    as for a build that ends during the cancel wait."""
    late = timeline(("BUILDING", 30), ("AVAILABLE", None))
    done, _ = await start_on_virtual_time(
        {PIPELINE: late}, seconds=60, cancel_on_timeout=True, interval=100
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    (image,) = report["images"]
    assert (report["status"], image["status"], image["cancel_requested"]) == (
        "AVAILABLE",
        "AVAILABLE",
        False,
    )
    assert "could not cancel" in done.stderr


async def test_a_status_that_cannot_be_read_during_the_cancel_wait_says_so_and_exits_4() -> None:
    """The credentials expire right after the cancel call (a CI session token): the wait
    cannot read the build, which is an API error (4, over the timeout's 3), and stderr
    says so instead of claiming the build was seen still running."""
    outage = {"code": "ExpiredTokenException", "start": "61s", "end": "1h"}
    done, _ = await start_on_virtual_time(
        {PIPELINE: ENDLESS},
        seconds=60,
        cancel_on_timeout=True,
        cancel_takes="30s",
        faults={"outages": [outage | {"operations": ["GetImage"]}]},
    )
    assert done.returncode == 4, done.stderr
    assert "was requested, but its status could not be read: " in done.stderr
    assert "still BUILDING" not in done.stderr
