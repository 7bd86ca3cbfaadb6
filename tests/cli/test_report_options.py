"""`--dotenv PATH` and `--summary PATH` on `wait-until-available` and `start`, with
GITHUB_OUTPUT beside them: written whatever the outcome, a stale dotenv report never
survives, and a path that cannot be written is refused before any call. In-process
(`watcher.cli.main` in a thread) against the simulator, whose scenario time stands
still once every build has ended."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
from pathlib import Path

import anyio
import pytest
from anyio.abc import SocketStream

from tests import gitlab_dotenv
from tests.cli.support import IBWATCH
from tests.cli.test_wait_diagnostics import AGENT, agent_and_web_base, offline
from tests.deploy.ci_support import PIPELINE, VERSION_ARN, pipeline_to_available
from tests.support import ACCOUNT
from watcher.cli import main
from watcher.simulator import Simulator
from watcher.start import token_for
from watcher.testing import FakeClock

__all__ = ["offline"]  # the autouse fixture: no real AWS, no GITHUB_OUTPUT

UNKNOWN_PIPELINE = f"arn:aws:imagebuilder:eu-west-1:{ACCOUNT}:image-pipeline/no-such-pipeline"


async def ibwatch(*argv: str) -> tuple[int, Simulator]:
    clock = FakeClock()
    simulator = Simulator(agent_and_web_base(), clock=clock)
    async with simulator as url:
        clock.advance(24 * 3600)
        command, *rest = argv
        full = [command, "--endpoint-url", url, "--interval", "1s", *rest]
        return await anyio.to_thread.run_sync(main, full), simulator


async def test_a_failed_build_is_reported_and_a_stale_report_replaced(tmp_path: Path) -> None:
    path = tmp_path / "ibwatch.env"
    path.write_text("IBWATCH_STATUS=AVAILABLE\nSTALE=1\n")
    code, _ = await ibwatch("wait-until-available", "--dotenv", str(path), AGENT)
    values = gitlab_dotenv.parse(path.read_bytes())
    assert code == 1
    assert "STALE" not in values
    assert (values["IBWATCH_STATUS"], values["IBWATCH_EXIT_CODE"]) == ("FAILED", "1")
    assert values["IBWATCH_FAILED_STEP"] == "TEST/RunImageTests"


async def test_a_pipeline_that_cannot_be_started_still_gets_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No wait ran, so no result: the status and the exit code say what happened, in
    the dotenv report, the summary and the step outputs alike."""
    dotenv, summary, outputs = tmp_path / "ibwatch.env", tmp_path / "summary.md", tmp_path / "out"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    code, simulator = await ibwatch(
        "start", "--dotenv", str(dotenv), "--summary", str(summary), UNKNOWN_PIPELINE
    )
    assert code == 4
    assert simulator.counters.requests["GetImagePipeline"] == 1
    assert simulator.counters.requests["StartImagePipelineExecution"] == 0
    values = gitlab_dotenv.parse(dotenv.read_bytes())
    assert (values["IBWATCH_STATUS"], values["IBWATCH_EXIT_CODE"]) == ("ERROR", "4")
    assert (values["IBWATCH_BUILD_ARN"], values["IBWATCH_AMIS"]) == ("", "{}")
    assert summary.read_text().startswith("### Image Builder: no result\n\nibwatch exit code 4: ")
    written = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert (written["status"], written["exit_code"], written["amis"]) == ("ERROR", "4", "{}")


async def test_no_wait_with_dotenv_is_refused_before_any_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ibwatch.env"
    code, simulator = await ibwatch("start", "--no-wait", "--dotenv", str(path), UNKNOWN_PIPELINE)
    assert code == 2
    assert "--dotenv says how the builds ended, and --no-wait" in capsys.readouterr().err
    assert gitlab_dotenv.parse(path.read_bytes())["IBWATCH_EXIT_CODE"] == "2"
    assert sum(simulator.counters.requests.values()) == 0


def test_a_summary_with_no_wait_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--no-wait has no result to describe; nothing is called, and the summary says
    so as for any usage error found after parsing."""
    pipeline = "arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/web-base"
    summary = tmp_path / "summary.md"
    assert main(["start", "--no-wait", "--summary", str(summary), pipeline]) == 2
    assert "--summary says how the builds ended" in capsys.readouterr().err
    assert summary.read_text().startswith("### Image Builder: no result\n\nibwatch exit code 2: ")


@pytest.mark.parametrize("option", ["--dotenv", "--summary"])
@pytest.mark.parametrize(
    ("where", "said"),
    [
        (".", "is a directory"),
        ("no/such/dir/ibwatch.env", "no directory"),
        ("x" * 300, "File name too long"),
    ],
    ids=["a-directory", "no-directory", "name-too-long"],
)
def test_a_path_that_cannot_be_written_is_a_usage_error(
    option: str, where: str, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused before anything runs, naming the path (one check for both options)."""
    with pytest.raises(SystemExit) as exited:
        main(["wait-until-available", option, str(tmp_path / where), AGENT])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert f"argument {option}: '{tmp_path / where}'" in err
    assert said in err


def test_a_command_line_refused_by_the_parser_leaves_the_files_as_they_were(
    tmp_path: Path,
) -> None:
    """The one exception to "whatever the outcome" (exit 2 with a usage line): the
    parser stops before anything knows where the files are."""
    path = tmp_path / "ibwatch.env"
    path.write_text("IBWATCH_STATUS=AVAILABLE\n")
    with pytest.raises(SystemExit) as exited:
        main(["wait-until-available", "--dotenv", str(path), "--timeout", "soon", AGENT])
    assert exited.value.code == 2
    assert path.read_text() == "IBWATCH_STATUS=AVAILABLE\n"


def github_outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


async def test_a_start_that_fails_partway_names_the_build_it_started_in_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first pipeline started, the second's start was refused (its token, derived
    from job-42, was used before on the first pipeline: IdempotentParameterMismatch):
    exit 4 with no result, yet the files name the started build (nothing waits for it
    now), the client token that gets it back, and why the second failed. No single
    `build_arn`: two pipelines were given."""
    dotenv, summary, outputs = tmp_path / "ibwatch.env", tmp_path / "summary.md", tmp_path / "out"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    plan = pipeline_to_available()
    second = PIPELINE.replace("web-base-nightly", "web-base-weekly")
    plan.pipelines.append(plan.pipelines[0].model_copy(update={"arn": second}))
    argv = ["start", "--dotenv", str(dotenv), "--summary", str(summary)]
    argv += ["--client-token", "job-42", PIPELINE, second]
    simulator = Simulator(plan)
    async with simulator as url:
        simulator.start_pipeline(PIPELINE, client_token=token_for("job-42", second, 2))
        code = await anyio.to_thread.run_sync(main, [*argv, "--endpoint-url", url])
    assert code == 4
    started = f"{VERSION_ARN}/2"
    written = github_outputs(outputs)
    assert (written["status"], written["build_arn"]) == ("ERROR", "")
    assert json.loads(written["build_arns"]) == [started]
    assert written["client_token"] == "job-42"
    [error] = json.loads(written["errors"])
    assert error["arn"] == second
    assert "IdempotentParameterMismatchException" in error["message"]
    values = gitlab_dotenv.parse(dotenv.read_bytes())
    assert (values["IBWATCH_STATUS"], values["IBWATCH_BUILD_ARN"]) == ("ERROR", "")
    text = summary.read_text()
    assert "Started before it stopped, and not waited for:\n\n- [`web-base 1.4.0/2`](" in text
    assert (
        "The same command run again with `--client-token` `job-42` gets the same build back "
        "instead of starting new ones: name the same 2 pipelines"
    ) in text
    assert f"#### `{second}`\n\n```text\n" in text


def test_every_arn_refused_after_parsing_is_named_in_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2 before any call; every refused ARN, not the first alone, in `errors`."""
    outputs, summary = tmp_path / "out", tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    wrong = ["not-an-arn", PIPELINE]
    assert main(["wait-until-available", "--summary", str(summary), wrong[0], AGENT, wrong[1]]) == 2
    errors = json.loads(github_outputs(outputs)["errors"])
    assert [error["arn"] for error in errors] == wrong
    assert "is an image pipeline ARN, not an image ARN" in errors[1]["message"]
    assert all(f"ibwatch: {error['message']}" in capsys.readouterr().err for error in errors[:1])
    assert f"#### `{PIPELINE}`" in summary.read_text()


def test_a_summary_goes_to_a_pipe_too(tmp_path: Path) -> None:
    """A FIFO (or /dev/stderr) cannot say where it is: the summary is written all
    the same, not dropped with a warning."""
    fifo = tmp_path / "summary.fifo"
    os.mkfifo(fifo)
    read: list[bytes] = []
    reader = threading.Thread(target=lambda: read.append(fifo.read_bytes()))
    reader.start()  # open() for writing blocks until a reader has the FIFO open
    try:
        assert main(["wait-until-available", "--summary", str(fifo), "not-an-arn"]) == 2
    finally:
        # A reader still waiting for a writer gets its end of file; none left: ENXIO.
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join()
    assert read[0].decode().startswith("### Image Builder: no result\n\nibwatch exit code 2: ")


async def test_sigterm_before_the_wait_ends_the_run_with_143_and_every_file_written(
    tmp_path: Path,
) -> None:
    """`start` on an endpoint that takes the connection and never answers: SIGTERM
    (a CI job cancelled) while StartImagePipelineExecution waits ends the run as the
    one-shot commands end on a signal, not with the process killed and nothing
    written."""
    dotenv, summary, outputs = tmp_path / "ibwatch.env", tmp_path / "summary.md", tmp_path / "out"
    called = anyio.Event()

    async def never_answer(stream: SocketStream) -> None:
        async with stream:
            called.set()
            await anyio.sleep_forever()

    env = {**os.environ, "GITHUB_OUTPUT": str(outputs), "AWS_EC2_METADATA_DISABLED": "true"}
    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
        anyio.create_task_group() as group,
    ):
        group.start_soon(listener.serve, never_answer)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        command = [str(IBWATCH), "start", "--endpoint-url", f"http://127.0.0.1:{port}"]
        command += ["--dotenv", str(dotenv), "--summary", str(summary), PIPELINE]
        async with await anyio.open_process(command, env=env, stdout=subprocess.DEVNULL) as process:
            with anyio.fail_after(30):
                await called.wait()
                process.send_signal(signal.SIGTERM)
                await process.wait()
            assert process.stderr is not None
            err = b"".join([chunk async for chunk in process.stderr]).decode()
        group.cancel_scope.cancel()
    assert process.returncode == 143, err
    assert "ibwatch: terminated (SIGTERM)" in err
    values = gitlab_dotenv.parse(dotenv.read_bytes())
    assert (values["IBWATCH_STATUS"], values["IBWATCH_EXIT_CODE"]) == ("INTERRUPTED", "143")
    assert summary.read_text().startswith("### Image Builder: no result\n\nibwatch exit code 143")
    assert github_outputs(outputs)["status"] == "INTERRUPTED"
