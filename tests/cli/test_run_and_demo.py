"""`ibwatch run` refusing bad configs, and `ibwatch demo` end to end."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.cli.support import IBWATCH
from tests.support import WEB_BASE


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(IBWATCH), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_run_with_a_bad_config_exits_2_naming_file_and_field(tmp_path: Path) -> None:
    config = tmp_path / "watcher.toml"
    config.write_text(f'[watch]\narns = ["{WEB_BASE}"]\nconcurency = 4\n')
    done = run("run", "--config", str(config))
    assert done.returncode == 2
    assert done.stderr.startswith(f"ibwatch: {config}: 1 problem(s):")
    assert "watch.concurency: unknown key (did you mean 'concurrency'?)" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "ibwatch-state.db").exists(), "nothing was started"


def test_run_with_a_missing_config_exits_2(tmp_path: Path) -> None:
    done = run("run", "--config", str(tmp_path / "nowhere.toml"))
    assert done.returncode == 2
    assert "file not found" in done.stderr


@pytest.mark.timeout(90)
def test_demo_prints_every_transition_and_exits_0_when_all_builds_ended(tmp_path: Path) -> None:
    fast = tmp_path / "fast.toml"
    demo = (Path(__file__).parents[2] / "config" / "demo-scenario.toml").read_text()
    fast.write_text(demo.replace("time_scale = 60.0", "time_scale = 400.0"))
    done = run("demo", "--scenario", str(fast), "--interval", "0.05s")
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
