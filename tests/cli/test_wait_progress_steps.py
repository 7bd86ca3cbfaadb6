"""The one-shot wait names the running workflow step: a CI log gets a line per new
step, a terminal's live line shows it. Against the simulator over loopback, on
virtual time shared by both."""

from __future__ import annotations

import io
import re

import anyio
import pytest

from tests.support import WEB_BASE, scenario, timeline, web_base_image
from watcher.simulator import Simulator
from watcher.testing import VirtualClock
from watcher.wait import WaitRequest, wait_until_available


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")


async def wait(stderr: io.StringIO, **options: object) -> int:
    """Wait on a build with 400s of BUILDING (four steps) and 300s of TESTING (three)."""
    steps = [*timeline(("BUILDING", 400), ("TESTING", 300)), {"status": "AVAILABLE"}]
    clock = VirtualClock()
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        async with Simulator(scenario([web_base_image(timeline=steps)]), clock=clock) as url:
            request = WaitRequest(
                arns=(WEB_BASE,), interval=30.0, endpoint_url=url, region="us-east-1", **options
            )  # type: ignore[arg-type]
            code = await wait_until_available(
                request, clock=clock, stdout=io.StringIO(), stderr=stderr
            )
        group.cancel_scope.cancel()
    return code


async def test_a_ci_log_gets_a_line_for_each_step_as_the_build_moves_through_its_workflows() -> (
    None
):
    stderr = io.StringIO()
    assert await wait(stderr) == 0
    steps = [
        re.sub(r"^\[[^]]+\] ", "", line)
        for line in stderr.getvalue().splitlines()
        if " workflow, step " in line and "still waiting" not in line
    ]
    # The time in status ends each line: checked apart, it depends on the poll times.
    assert [line.rsplit(" · ", 1)[0] for line in steps] == [
        "web-base 1.4.0/7 BUILDING · build workflow, step 1/4 LaunchBuildInstance (LaunchInstance)",
        "web-base 1.4.0/7 BUILDING · build workflow, step 2/4 ApplyBuildComponents "
        "(ExecuteComponents)",
        "web-base 1.4.0/7 BUILDING · build workflow, step 3/4 CreateOutputAMI (CreateImage)",
        "web-base 1.4.0/7 BUILDING · build workflow, step 4/4 TerminateBuildInstance "
        "(TerminateInstance)",
        "web-base 1.4.0/7 TESTING · test workflow, step 1/3 LaunchTestInstance (LaunchInstance)",
        "web-base 1.4.0/7 TESTING · test workflow, step 2/3 ApplyTestComponents "
        "(ExecuteComponents)",
        "web-base 1.4.0/7 TESTING · test workflow, step 3/3 TerminateTestInstance "
        "(TerminateInstance)",
    ]
    assert all(re.fullmatch(r"≥?(\d+m)?\d+s", line.rsplit(" · ", 1)[1]) for line in steps), steps
    # The heartbeat names the running step too.
    assert re.search(
        r"still waiting: web-base 1\.4\.0/7  \w+ · \w+ workflow, step ", stderr.getvalue()
    )


async def test_a_terminal_shows_the_running_step_on_the_live_line() -> None:
    stderr = Terminal()
    assert await wait(stderr) == 0
    text = stderr.getvalue()
    assert re.search(
        r"\x1b\[2Kweb-base 1\.4\.0/7  TESTING · test workflow, step 2/3 ApplyTestComponents "
        r"\(ExecuteComponents\) · \d+m\d+s in status, \d+m\d+s total",
        text,
    ), text[-2000:]


async def test_without_a_share_the_lines_are_as_before() -> None:
    stderr = io.StringIO()
    assert await wait(stderr, progress_share=0.0) == 0
    assert " workflow, step " not in stderr.getvalue()
