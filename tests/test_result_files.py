"""What a one-shot wait hands on to CI besides stdout ($GITHUB_OUTPUT, `--dotenv`,
`--summary`, through `watcher.result_files`): the three files agree, a run without a
result still says what happened, and a file that cannot be written costs a warning,
never the result or the exit code."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests import gitlab_dotenv
from tests.report_factory import WEB, image, report
from watcher.result_files import ResultFiles, no_result
from watcher.testing import ScriptedSource, VirtualClock
from watcher.wait import WaitRequest, wait_until_available


def write_all(tmp_path: Path, result: dict[str, Any]) -> tuple[dict[str, str], dict[str, str], str]:
    """The three files written from `result`: GITHUB_OUTPUT's keys, the dotenv's
    variables as GitLab reads them, the summary."""
    files = ResultFiles(
        github_output=tmp_path / "github_output",
        dotenv=tmp_path / "ibwatch.env",
        summary=tmp_path / "summary.md",
    )
    stderr = io.StringIO()
    files.write(result, stderr)
    assert stderr.getvalue() == ""
    assert files.reported
    lines = (tmp_path / "github_output").read_text().splitlines()
    outputs = dict(line.split("=", 1) for line in lines)
    dotenv = gitlab_dotenv.parse((tmp_path / "ibwatch.env").read_bytes())
    return outputs, dotenv, (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize(
    ("diagnosed", "named"),
    [
        (
            {"workflow": "TEST", "name": "RunImageTests", "action": "", "message": "x"},
            "TEST/RunImageTests",
        ),
        (None, "RunImageTests"),
    ],
    ids=["from-the-workflow-apis", "from-failure-context-alone"],
)
def test_every_file_names_the_same_failed_step(
    tmp_path: Path, diagnosed: dict[str, str] | None, named: str
) -> None:
    """Without the ListWorkflow* permissions the diagnostics have no step: the files
    fall back to failureContext's step name, all three alike."""
    failed = image(
        WEB, status="FAILED", failed_step="RunImageTests", failed_workflow_step=diagnosed
    )
    outputs, dotenv, summary = write_all(tmp_path, report(failed, status="FAILED", code=1))
    assert outputs["failed_step"] == dotenv["IBWATCH_FAILED_STEP"] == named
    assert f"| FAILED | `{named}` |" in summary


def test_the_step_outputs_and_the_dotenv_agree_on_every_shared_value(tmp_path: Path) -> None:
    failed = image(
        WEB,
        status="FAILED",
        log_group="/aws/imagebuilder/web-base",
        console_url="https://console.example/x",
    )
    other = image("arn:aws:imagebuilder:us-east-1:123456789012:image/api/2.0.0/1")
    outputs, dotenv, _ = write_all(tmp_path, report(failed, other, status="FAILED", code=1))
    shared = ("status", "exit_code", "build_arn", "amis", "container_uris", "failed_step")
    for name in (*shared, "log_group", "console_url"):
        assert dotenv[f"IBWATCH_{name.upper()}"] == outputs[name], name


def test_a_run_without_a_result_says_its_exit_code_everywhere(tmp_path: Path) -> None:
    """A pipeline that could not be started (exit 4): the status and the exit code,
    `{}` and `[]` where a workflow parses JSON, and a summary saying what 4 means."""
    outputs, dotenv, summary = write_all(tmp_path, no_result(4))
    assert (outputs["status"], outputs["exit_code"]) == ("ERROR", "4")
    assert (outputs["amis"], outputs["container_uris"], outputs["build_arn"]) == ("{}", "[]", "")
    assert (dotenv["IBWATCH_STATUS"], dotenv["IBWATCH_AMIS"]) == ("ERROR", "{}")
    assert summary.startswith("### Image Builder: no result\n\nibwatch exit code 4: an API error")
    assert no_result(143)["status"] == "INTERRUPTED"
    assert no_result(143)["interrupted"] == "SIGTERM"
    assert no_result(70)["status"] == "ERROR"


async def test_a_file_that_cannot_be_written_costs_a_warning_not_the_result(tmp_path: Path) -> None:
    """The dotenv report's directory is gone by the end of the wait: the wait still
    ends with its own exit code, the warning names the file, and the summary after it
    is written all the same."""
    gone = tmp_path / "gone" / "ibwatch.env"
    files = ResultFiles(dotenv=gone, summary=tmp_path / "summary.md")
    request = WaitRequest(arns=(WEB,), interval=30, files=files)
    clock = VirtualClock()
    stderr = io.StringIO()
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        code = await wait_until_available(
            request,
            clock=clock,
            stdout=io.StringIO(),
            stderr=stderr,
            source=ScriptedSource(clock, {WEB: ["AVAILABLE"]}),
        )
        group.cancel_scope.cancel()
    assert code == 0
    assert f"ibwatch: warning: --dotenv {gone}: No such file or directory\n" in stderr.getvalue()
    assert (tmp_path / "summary.md").read_text().startswith("### Image Builder: AVAILABLE\n")


def test_a_writer_that_raises_costs_its_own_file_only(tmp_path: Path) -> None:
    """Not an OSError (a path with a NUL byte: ValueError from open()): a warning
    naming the file and the error's type, the other files written, nothing raised."""
    files = ResultFiles(
        github_output=tmp_path / "github_output",
        dotenv=tmp_path / "ibwatch.env",
        summary=tmp_path / "summary\0.md",
    )
    stderr = io.StringIO()
    files.write(report(image(WEB)), stderr)
    assert stderr.getvalue() == (
        f"ibwatch: warning: --summary {tmp_path}/summary\0.md: not written: "
        "ValueError: embedded null byte\n"
    )
    assert "status=AVAILABLE" in (tmp_path / "github_output").read_text()
    assert gitlab_dotenv.parse((tmp_path / "ibwatch.env").read_bytes())["IBWATCH_STATUS"] == (
        "AVAILABLE"
    )


def test_aws_text_that_utf8_cannot_hold_reaches_every_file(tmp_path: Path) -> None:
    """AWS's JSON may carry a lone surrogate (`"\\ud800"` parses): each file gets `?`
    in its place, never a UnicodeEncodeError in place of the file."""
    odd = json.loads('"Step\\ud800Name"')
    failed = image(WEB, status="FAILED", reason=odd, failed_step=odd)
    outputs, dotenv, summary = write_all(tmp_path, report(failed, status="FAILED", code=1))
    assert outputs["failed_step"] == dotenv["IBWATCH_FAILED_STEP"] == "Step?Name"
    assert "| FAILED | `Step?Name` |" in summary
