"""`ibwatch run` refusing bad configs, and `ibwatch demo` end to end: through the
CLI's `main`, in-process (`tests/cli/in_thread.py`). The `ibwatch demo` program
itself, and its exit on Ctrl-C: tests/cli/test_interrupts.py."""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import pytest

from tests.cli.in_thread import ibwatch
from tests.engine.test_log_tail import LAST_FIVE
from tests.support import WEB_BASE


async def test_run_with_a_bad_config_exits_2_naming_file_and_field(tmp_path: Path) -> None:
    config = tmp_path / "watcher.toml"
    config.write_text(f'[watch]\narns = ["{WEB_BASE}"]\nconcurency = 4\n')
    done = await ibwatch("run", "--config", str(config))
    assert done.returncode == 2
    assert done.stderr.startswith(f"ibwatch: {config}: 1 problem(s):")
    assert "watch.concurency: unknown key (did you mean 'concurrency'?)" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "ibwatch-state.db").exists(), "nothing was started"


async def test_run_with_a_missing_config_exits_2(tmp_path: Path) -> None:
    done = await ibwatch("run", "--config", str(tmp_path / "nowhere.toml"))
    assert done.returncode == 2
    assert "file not found" in done.stderr


@pytest.mark.timeout(90)
async def test_demo_prints_every_transition_and_exits_0_when_all_builds_ended(
    tmp_path: Path,
) -> None:
    fast = tmp_path / "fast.toml"
    demo = (Path(__file__).parents[2] / "config" / "demo-scenario.toml").read_text()
    fast.write_text(demo.replace("time_scale = 60.0", "time_scale = 400.0"))
    with anyio.fail_after(60):
        done = await ibwatch("demo", "--scenario", str(fast), "--interval", "0.05s")
    assert done.returncode == 0, done.stderr
    # Its first sighting. PENDING lasts 0.15 s at 400x: how soon discovery and the
    # first poll come after the start decides which status it shows, and the
    # machine's speed must not decide whether the test passes.
    assert re.search(r"web-base 1\.4\.0/7 is [A-Z]+\b", done.stdout)
    assert "in 3 regions" in done.stdout
    assert "windows-agent 3.1.0/12 TESTING → FAILED" in done.stdout
    # The four builds in progress at the start, and the two runs the nightly
    # pipeline's schedule starts later, found by following the pipelines.
    assert done.stdout.rstrip().splitlines()[-6:] == [
        "  api-runtime 2.0.3/1          AVAILABLE",
        "  gpu-base 0.9.0/3             CANCELLED",
        "  web-base 1.4.0/7             AVAILABLE",
        "  web-base 1.4.0/8             AVAILABLE",
        "  web-base 1.4.0/9             AVAILABLE",
        "  windows-agent 3.1.0/12       FAILED",
    ]
    assert "following 4 pipelines" in done.stdout
    # Why its failing build failed: the demo reads 5 lines of the windows-agent
    # build's log, which ends with a password, redacted.
    lines = done.stdout.splitlines()
    why = lines.index("ibwatch demo: why windows-agent 3.1.0/12 failed:")
    block = lines.index("  last 5 log lines:", why)
    assert lines[block + 1 : block + 6] == [f"    {line}" for line in LAST_FIVE]
    assert lines[block + 6].startswith("ibwatch demo: every build has ended")
