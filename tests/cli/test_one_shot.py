"""What the one-shot commands cost before their first call, and what a person reads
on their stderr in a CI log."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import anyio
import pytest
import structlog

from tests.support import WEB_BASE, scenario, timeline, web_base_image
from watcher.cli import main
from watcher.simulator import Simulator
from watcher.testing import FakeClock

HEAVY = ("pydantic", "pydantic_core", "watcher.config", "watcher.daemon", "watcher.simulator")
"""What `wait-until-available` and `start` never need: the config file's models
(pydantic), the daemon, the simulator. Timing belongs in `bench` (section 5); this
guards the import set that timing depends on."""

# Parses the command line as `ibwatch` would, then imports what the command runs,
# and lists the heavy modules that came with it.
_PROBE = """
import sys
from watcher.cli import build_parser
build_parser().parse_args(sys.argv[1:])
import watcher.cli, watcher.logs, watcher.start, watcher.wait
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in {heavy} or m in {heavy})))
"""


def test_the_one_shot_commands_import_neither_pydantic_nor_the_daemon() -> None:
    """One subprocess for both commands: `start` runs on `wait`'s modules."""
    pipeline = "arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/web-base-nightly"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _PROBE.format(heavy=set(HEAVY)),
            "start",
            "--timeout",
            "5m",
            pipeline,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == []


@pytest.fixture
def reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.mark.usefixtures("reset_logging")
async def test_warnings_among_the_progress_lines_are_human_lines_not_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """stderr is not a terminal here, as in CI: the engine's warning used to be JSON.
    No grace for NotFound: the run ends on the first answer, not on a real-time
    timeout that a slow machine might reach before any call."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
    clock = FakeClock()  # scenario time stands still: the build never appears, 404s
    plan = scenario([web_base_image(start=5, timeline=timeline(("AVAILABLE", None)))])
    async with Simulator(plan, clock=clock) as url:
        argv = ["wait-until-available", "--endpoint-url", url, "--not-found-grace", "0s"]
        code = await anyio.to_thread.run_sync(main, [*argv, "--timeout", "10m", WEB_BASE])
    lines = capsys.readouterr().err.splitlines()
    assert code == 4  # not found: retrying will not heal it
    assert [line for line in lines if line.lstrip().startswith("{")] == []
    errors = [line for line in lines if line.startswith("ibwatch: error: ")]
    assert errors, lines
    assert errors[0].startswith(
        "ibwatch: error: image watch stopped: web-base/1.4.0/7: ResourceNotFoundException"
    ), errors[0]
