"""`ibwatch demo --push`: the demo played through a real SQS queue (moto's server,
started by the demo on loopback), in-process through the CLI's `main`, on real time
at a faster scenario speed."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from watcher.cli import main

DEMO = Path(__file__).parents[2] / "config" / "demo-scenario.toml"


@pytest.mark.timeout(60)
def test_demo_push_ends_every_build_with_events_coming_by_push(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fast = tmp_path / "fast.toml"
    fast.write_text(DEMO.read_text().replace("time_scale = 60.0", "time_scale = 1500.0"))
    code = main(["demo", "--push", "--scenario", str(fast), "--interval", "0.01s"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "pushes each status change to the SQS queue http://127.0.0.1:" in out
    lines = out.rstrip().splitlines()
    assert lines[-7:-1] == [
        "  api-runtime 2.0.3/1          AVAILABLE",
        "  gpu-base 0.9.0/3             CANCELLED",
        "  web-base 1.4.0/7             AVAILABLE",
        "  web-base 1.4.0/8             AVAILABLE",
        "  web-base 1.4.0/9             AVAILABLE",
        "  windows-agent 3.1.0/12       FAILED",
    ]
    found = re.fullmatch(
        r"ibwatch demo: (\d+) push events had a watched build polled at once "
        r"\(ibwatch_push_events_total matched\); (\d+) transitions, (\d+) GetImage calls in all",
        lines[-1],
    )
    assert found, lines[-1]
    assert int(found[1]) > 0, "some events came by push"


def test_demo_push_without_moto_exits_2_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "moto", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "moto.server", None)
    assert main(["demo", "--push"]) == 2
    assert "pip install 'moto[server]'" in capsys.readouterr().err
