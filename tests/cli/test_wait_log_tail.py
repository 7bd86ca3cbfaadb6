"""`--log-lines N`: the last lines of a failed build's log in the one-shot result,
redacted: an indented block under the build's diagnostics in text, `log_tail` in
JSON, nothing in GITHUB_OUTPUT. In-process (`watcher.cli.main` in a thread) against
the simulator, whose scenario time stands still once past the failure, so the first
answer ends the wait; `ibwatch start` in-process on virtual time."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.cli.test_wait_diagnostics import AGENT, agent_and_web_base, images, offline
from tests.engine.test_log_tail import LAST_FIVE, logs_outage
from tests.support import ACCOUNT, WEB_BASE
from watcher import cli
from watcher.cli import build_parser, main
from watcher.config.diagnostics import MAX_LOG_LINES
from watcher.simulator import Scenario, Simulator, load_scenario
from watcher.start import StartRequest, start_pipelines
from watcher.testing import FakeClock, VirtualClock
from watcher.wait import WaitRequest

__all__ = ["offline"]  # the autouse fixture: no real AWS, no GITHUB_OUTPUT

PIPELINE = f"arn:aws:imagebuilder:eu-west-1:{ACCOUNT}:image-pipeline/windows-agent"


async def wait(*args: str, plan: Scenario | None = None) -> tuple[int, Simulator]:
    """`ibwatch wait-until-available ARGS` once every build has ended."""
    clock = FakeClock()
    simulator = Simulator(plan or agent_and_web_base(), clock=clock)
    async with simulator as url:
        clock.advance(24 * 3600)
        argv = ["wait-until-available", "--endpoint-url", url, "--interval", "1s", *args]
        return await anyio.to_thread.run_sync(main, argv), simulator


async def test_text_shows_the_last_lines_as_a_block_under_the_failed_build(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _ = await wait(AGENT, "--log-lines", "5")
    assert code == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{AGENT}  FAILED  in TESTING")
    assert lines[3].startswith("  console: ")
    assert lines[4:] == ["  last 5 log lines:", *(f"    {line}" for line in LAST_FIVE)]


async def test_json_carries_the_last_lines_and_null_for_a_build_that_did_not_fail(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, simulator = await wait(AGENT, WEB_BASE, "--output", "json", "--log-lines", "5")
    assert code == 1
    by_arn = images(capsys.readouterr().out)
    assert by_arn[AGENT]["log_tail"] == list(LAST_FIVE)
    assert by_arn[WEB_BASE]["log_tail"] is None
    assert simulator.counters.requests["GetLogEvents"] == 1, "only the failed build's"


async def test_without_log_lines_no_log_is_read_and_log_tail_is_null(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, simulator = await wait(AGENT, "--output", "json")
    assert code == 1
    assert images(capsys.readouterr().out)[AGENT]["log_tail"] is None
    assert simulator.counters.requests["GetLogEvents"] == 0


async def test_a_denied_log_read_leaves_log_tail_null_and_warns_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The exit code says how the build ended, not whether its log could be read."""
    demo = agent_and_web_base().model_dump()
    denied = Scenario.model_validate(
        {**demo, "faults": {"outages": [logs_outage("AccessDeniedException")]}}
    )
    code, _ = await wait(AGENT, "--output", "json", "--log-lines", "5", plan=denied)
    assert code == 1
    out, err = capsys.readouterr()
    assert images(out)[AGENT]["log_tail"] is None
    assert images(out)[AGENT]["failed_workflow_step"]["name"] == "RunImageTests"
    warnings = [line for line in err.splitlines() if "log tail unavailable" in line]
    assert len(warnings) == 1
    assert "logs:GetLogEvents" in warnings[0]


async def test_github_output_keys_stay_as_they_were_and_carry_no_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    code, _ = await wait(AGENT, "--log-lines", "5")
    assert code == 1
    lines = outputs.read_text().splitlines()
    values = dict(line.split("=", 1) for line in lines)
    assert len(values) == len(lines), "one line per key"
    assert "log_tail" not in values
    assert all("log_tail" not in image for image in json.loads(values["result"])["images"])
    assert not any(LAST_FIVE[0] in value for value in values.values())


@pytest.mark.parametrize("value", ["-1", "1001", "five", "2.5"])
def test_a_bad_log_lines_exits_2_naming_the_option(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """As every bad option: argparse's usage error, before anything is called."""
    with pytest.raises(SystemExit) as exited:
        main(["wait-until-available", "--log-lines", value, AGENT])
    assert exited.value.code == 2
    assert "ibwatch: argument --log-lines: expected" in capsys.readouterr().err


def test_log_lines_is_an_option_of_start_too_and_reaches_the_wait() -> None:
    args = build_parser().parse_args(["start", "--log-lines", "7", PIPELINE])
    assert cli._wait_request(args, ()).log_lines == 7


def test_the_flag_allows_what_the_config_allows() -> None:
    assert cli.MAX_LOG_LINES == MAX_LOG_LINES


def failing_pipeline() -> Scenario:
    """The demo's windows-agent pipeline, whose runs fail in TESTING as the demo's
    windows-agent build does, with the same log."""
    demo = load_scenario(Path(__file__).parents[2] / "config" / "demo-scenario.toml").model_dump()
    agent = next(i for i in demo["images"] if i["arn"] == AGENT)
    pipeline = next(p for p in demo["pipelines"] if p["arn"] == PIPELINE)
    fails: dict[str, Any] = {**pipeline, "timeline": agent["timeline"], "amis": []}
    return Scenario.model_validate({**demo, "images": [], "pipelines": [fails], "faults": {}})


async def test_start_shows_the_last_lines_of_the_build_it_started() -> None:
    clock = VirtualClock()
    out, err = io.StringIO(), io.StringIO()
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        async with Simulator(failing_pipeline(), clock=clock) as url:
            wait_request = WaitRequest(arns=(), endpoint_url=url, interval=30.0, log_lines=5)
            code = await start_pipelines(
                StartRequest(pipelines=(PIPELINE,), wait=wait_request),
                clock=clock,
                stdout=out,
                stderr=err,
            )
        group.cancel_scope.cancel()
    assert code == 1, err.getvalue()
    lines = out.getvalue().splitlines()
    block = lines.index("  last 5 log lines:")
    assert lines[block + 1 :] == [f"    {line}" for line in LAST_FIVE]
