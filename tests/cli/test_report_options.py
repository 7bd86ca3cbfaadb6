"""`--dotenv PATH` and `--summary PATH` on `wait-until-available` and `start`, with
GITHUB_OUTPUT beside them: written whatever the outcome, a stale dotenv report never
survives, and a path that cannot be written is refused before any call. In-process
(`watcher.cli.main` in a thread) against the simulator, whose scenario time stands
still once every build has ended."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from tests import gitlab_dotenv
from tests.cli.test_wait_diagnostics import AGENT, agent_and_web_base, offline
from tests.support import ACCOUNT
from watcher.cli import main
from watcher.simulator import Simulator
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
    assert simulator.counters.requests["StartImagePipelineExecution"] == 1
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
