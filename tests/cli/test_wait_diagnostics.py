"""Why a build failed, in the one-shot result: the block under its line, the JSON
keys and the GITHUB_OUTPUT keys, from the diagnostics of its FAILED event.
In-process (`watcher.cli.main` in a thread) against the simulator, whose scenario
time stands still once past the failure, so the first answer ends the wait."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog

from tests.support import ACCOUNT, WEB_BASE, timeline, web_base_image
from watcher.cli import main
from watcher.simulator import Scenario, Simulator, load_scenario
from watcher.testing import FakeClock
from watcher.wait import render_text

DEMO = Path(__file__).parents[2] / "config" / "demo-scenario.toml"
AGENT = f"arn:aws:imagebuilder:eu-west-1:{ACCOUNT}:image/windows-agent/3.1.0/12"
STEP_MESSAGE = (
    "Component agent-smoke-test/1.0.2 failed in phase 'test', step 'RunTests' "
    "(ExecutePowerShell), exit code 1: Test-AgentService: service 'ibagent' did not "
    "reach Running within 120s"
)
CONSOLE = (
    "https://eu-west-1.console.aws.amazon.com/imagebuilder/home?region=eu-west-1#/images/"
    "arn%3Aaws%3Aimagebuilder%3Aeu-west-1%3A123456789012%3Aimage%2Fwindows-agent%2F3.1.0"
    "/12/details"
)
DIAGNOSTIC_KEYS = ("failed_workflow_step", "log_group", "log_stream", "console_url")


def agent_and_web_base() -> Scenario:
    """The demo's windows-agent build, which fails in TESTING at RunImageTests, and a
    web-base build that is AVAILABLE; no faults."""
    demo = load_scenario(DEMO).model_dump()
    agent = [i for i in demo["images"] if i["arn"] == AGENT]
    web = web_base_image(timeline=timeline(("AVAILABLE", None)))
    return Scenario.model_validate({**demo, "images": [*agent, web], "pipelines": [], "faults": {}})


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    yield
    structlog.reset_defaults()  # main() configures logging for the process


async def wait(*args: str) -> int:
    """`ibwatch wait-until-available ARGS`, once every build has ended."""
    clock = FakeClock()
    async with Simulator(agent_and_web_base(), clock=clock) as url:
        clock.advance(24 * 3600)
        argv = ["wait-until-available", "--endpoint-url", url, "--interval", "1s", *args]
        return await anyio.to_thread.run_sync(main, argv)


def images(out: str) -> dict[str, dict[str, Any]]:
    return {image["arn"]: image for image in json.loads(out)["images"]}


async def test_a_build_failing_in_testing_shows_its_step_logs_and_console_under_its_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await wait(AGENT) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{AGENT}  FAILED  in TESTING: Image testing failed")
    assert lines[1:] == [
        f"  failed in TEST workflow, step RunImageTests (ExecuteComponents): {STEP_MESSAGE}",
        "  logs: /aws/imagebuilder/windows-agent 3.1.0/12",
        f"  console: {CONSOLE}",
    ]


async def test_an_available_build_has_no_diagnostics_block(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await wait(WEB_BASE) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{WEB_BASE}  AVAILABLE"
    assert all(line.startswith("  ") and " ami-" in line for line in lines[1:]), lines


async def test_json_carries_the_failed_step_logs_and_console_and_null_for_an_available_build(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await wait(AGENT, WEB_BASE, "--output", "json") == 1
    by_arn = images(capsys.readouterr().out)
    agent, web = by_arn[AGENT], by_arn[WEB_BASE]
    assert agent["failed_workflow_step"] == {
        "workflow": "TEST",
        "name": "RunImageTests",
        "action": "ExecuteComponents",
        "message": STEP_MESSAGE,
    }
    assert (agent["log_group"], agent["log_stream"], agent["console_url"]) == (
        "/aws/imagebuilder/windows-agent",
        "3.1.0/12",
        CONSOLE,
    )
    assert agent["failed_step"] == "RunImageTests", "failureContext's name, as before"
    assert {key: web[key] for key in DIAGNOSTIC_KEYS} == dict.fromkeys(DIAGNOSTIC_KEYS)


async def test_github_output_names_the_failed_step_log_group_and_console_but_not_the_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    assert await wait(WEB_BASE, AGENT) == 1
    lines = outputs.read_text().splitlines()
    values = dict(line.split("=", 1) for line in lines)
    assert len(values) == len(lines), "one line per key: nothing spilled onto a line of its own"
    assert (values["failed_step"], values["log_group"], values["console_url"]) == (
        "TEST/RunImageTests",
        "/aws/imagebuilder/windows-agent",
        CONSOLE,
    )
    assert not any(STEP_MESSAGE in value for key, value in values.items() if key != "result")


async def test_github_output_diagnostic_keys_are_empty_when_every_build_is_available(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    assert await wait(WEB_BASE) == 0
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert (values["failed_step"], values["log_group"], values["console_url"]) == ("", "", "")


async def test_a_version_arn_gets_the_diagnostics_of_the_build_it_resolved_to(
    capsys: pytest.CaptureFixture[str],
) -> None:
    version = AGENT.rsplit("/", 1)[0]
    assert await wait(version, "--output", "json") == 1
    image = images(capsys.readouterr().out)[version]
    assert (image["build_arn"], image["failed_workflow_step"]["name"]) == (AGENT, "RunImageTests")


def test_a_multi_line_step_message_stays_indented_inside_the_block() -> None:
    """A message of several lines must not read as lines of the result of its own."""
    step = {"workflow": None, "name": "Run", "action": None, "message": "first\nsecond"}
    image = {
        **dict.fromkeys(("error", "failed_in", "reason", "failed_step", "log_group")),
        **dict.fromkeys(("log_stream", "console_url", "waiting", "last_error")),
        "arn": AGENT,
        "build_arn": AGENT,
        "status": "FAILED",
        "cancelled_at_timeout": False,
        "amis": [],
        "containers": [],
        "failed_workflow_step": step,
    }
    report = {"timed_out": False, "interrupted": None, "images": [image]}
    assert render_text(report).splitlines()[1:] == ["  failed in step Run: first", "    second"]
