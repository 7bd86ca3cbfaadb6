"""wait-until-available's progress on stderr, on virtual time with a scripted source."""

from __future__ import annotations

import io
import json
import re

import anyio

from watcher.errors import NotFound
from watcher.testing import ScriptedSource, ScriptEntry, VirtualClock
from watcher.wait import WaitRequest, wait_until_available

A = "arn:aws:imagebuilder:us-east-1:123456789012:image/a/1.0.0/1"
B = "arn:aws:imagebuilder:us-east-1:123456789012:image/b/1.0.0/1"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def wait_for(
    scripts: dict[str, list[ScriptEntry]], stderr: io.StringIO, **options: object
) -> tuple[int, str]:
    clock = VirtualClock()
    stdout = io.StringIO()
    options = {"heartbeat": 300, **options}
    request = WaitRequest(arns=tuple(scripts), interval=30, **options)  # type: ignore[arg-type]
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        code = await wait_until_available(
            request,
            clock=clock,
            stdout=stdout,
            stderr=stderr,
            source=ScriptedSource(clock, scripts),
        )
        group.cancel_scope.cancel()
    return code, stdout.getvalue()


async def test_ci_log_gets_a_line_per_transition_and_a_heartbeat_every_few_minutes() -> None:
    stderr = io.StringIO()
    code, _ = await wait_for({A: ["BUILDING"] * 25 + ["AVAILABLE"]}, stderr)
    lines = stderr.getvalue().splitlines()
    assert code == 0
    assert lines[0] == "[0s] a 1.0.0/1 is BUILDING"
    heartbeats = [line for line in lines if "still waiting" in line]
    # "≥": first seen in BUILDING, so five minutes is a lower bound.
    assert heartbeats[0].startswith("[5m00s] still waiting: a 1.0.0/1  BUILDING  ≥5m00s in status")
    assert len(heartbeats) == 2  # at 5 and 10 minutes; the build ends at about 12.5
    assert re.fullmatch(
        r"\[1\dm\d\ds\] a 1\.0\.0/1 BUILDING → AVAILABLE after 1\dm\d\ds "
        # Not TESTING: the scripted build does not say its tests are enabled.
        r"\(passed DISTRIBUTING\)",
        lines[-1],
    ), lines[-1]


async def test_terminal_gets_live_lines_redrawn_in_place() -> None:
    stderr = Terminal()
    code, _ = await wait_for(
        {A: ["BUILDING"] * 3 + ["AVAILABLE"], B: ["TESTING"] * 2 + ["AVAILABLE"]}, stderr
    )
    text = stderr.getvalue()
    assert code == 0
    assert "\x1b[2Ka 1.0.0/1  BUILDING  " in text
    assert "\x1b[2Kb 1.0.0/1  TESTING  " in text
    assert "\x1b[2F" in text, "the two lines are redrawn in place"
    assert text.rstrip("\n").rsplit("\x1b[2K", 2)[-2:][0].startswith("a 1.0.0/1  AVAILABLE")


async def test_timeout_exit_3_reports_the_build_still_in_progress() -> None:
    stderr = io.StringIO()
    code, out = await wait_for({A: ["BUILDING"]}, stderr, timeout=600, output="json")
    report = json.loads(out)
    assert code == 3
    assert (report["status"], report["timed_out"], report["images"][0]["status"]) == (
        "TIMEOUT",
        True,
        "BUILDING",
    )


async def test_api_error_wins_over_a_failed_build() -> None:
    gone = NotFound("ResourceNotFoundException: gone", code="ResourceNotFoundException", arn=B)
    code, out = await wait_for({A: ["FAILED"], B: [gone]}, io.StringIO())
    assert code == 4
    assert out.splitlines() == [f"{A}  FAILED", f"{B}  ERROR  ResourceNotFoundException: gone"]


async def test_time_in_status_is_a_lower_bound_only_when_counted_from_first_sight() -> None:
    """Seen entering TESTING, its time there is known; first seen BUILDING, it is not."""
    stderr = io.StringIO()
    await wait_for({A: ["BUILDING"] * 12 + ["TESTING"] * 12 + ["AVAILABLE"]}, stderr, heartbeat=150)
    heartbeats = [line for line in stderr.getvalue().splitlines() if "still waiting" in line]
    building = [line for line in heartbeats if "BUILDING" in line]
    testing = [line for line in heartbeats if "TESTING" in line]
    assert building
    assert testing
    assert all(re.search(r"BUILDING  ≥\d+m\d\ds in status", line) for line in building)
    assert all(re.search(r"TESTING  \d+m\d\ds in status", line) for line in testing)
