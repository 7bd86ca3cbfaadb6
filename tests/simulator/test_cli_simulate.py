"""`ibwatch simulate` as a person runs it, on a real port. It listens for SIGINT and
SIGTERM, which only a process's main thread may do: stopped by a signal, it is a
real subprocess; with `--until-settled` it stops by itself, and the CLI's `main`
runs in this process's main thread (`helpers.in_main_thread`), the test being
synchronous.
A port in use ends it before it listens for any signal: that one runs `main` in a
worker thread (`tests/cli/in_thread.py`)."""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path

import anyio
import pytest
from anyio.streams.text import TextReceiveStream

from tests.cli.in_thread import ibwatch
from tests.simulator.helpers import in_main_thread
from tests.support import WEB_BASE, imagebuilder, timeline

IBWATCH = Path(sys.executable).parent / "ibwatch"
DEMO = Path(__file__).parents[2] / "config" / "demo-scenario.toml"
URL = re.compile(r"at (http://127\.0\.0\.1:\d+)")


async def test_serves_until_interrupted_and_exits_zero() -> None:
    async with await anyio.open_process(
        [str(IBWATCH), "simulate", "--scenario", str(DEMO)]
    ) as process:
        assert process.stdout is not None
        first = (await process.stdout.receive()).decode()
        found = URL.search(first)
        assert found, first
        async with imagebuilder(found[1]) as client:
            image = (await client.get_image(imageBuildVersionArn=WEB_BASE))["image"]
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(20):
            returncode = await process.wait()
    assert image["arn"] == WEB_BASE
    assert returncode == 0


@pytest.mark.timeout(60)
def test_until_settled_prints_each_change_and_exits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    steps = ", ".join(
        f'{{ status = "{s["status"]}"'
        + (f", duration = {s['duration']}" if "duration" in s else "")
        + " }"
        for s in timeline(("PENDING", 60), ("BUILDING", 120), ("AVAILABLE", None))
    )
    scenario = tmp_path / "quick.toml"
    scenario.write_text(f'time_scale = 600\n[[images]]\narn = "{WEB_BASE}"\ntimeline = [{steps}]\n')
    returncode, lines = in_main_thread(
        capsys, "simulate", "--scenario", str(scenario), "--until-settled"
    )
    assert returncode == 0
    changes = [line.split()[-1] for line in lines if line.startswith("  t=")]
    assert changes == ["PENDING", "BUILDING", "AVAILABLE"]
    assert lines[-1] == "every build has reached its final status; stopping"


SCHEDULED = """
time_scale = 600
[[pipelines]]
arn = "arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/web-base-nightly"
image = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0"
schedule = { every = "1m", first = "1m", until = "2m" }
timeline = [{ status = "BUILDING", duration = "30s" }, { status = "AVAILABLE" }]
"""


@pytest.mark.timeout(60)
def test_until_settled_narrates_scheduled_runs_as_they_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "scheduled.toml"
    scenario.write_text(SCHEDULED)
    returncode, lines = in_main_thread(
        capsys, "simulate", "--scenario", str(scenario), "--until-settled"
    )
    assert returncode == 0
    changes = [line.split(None, 1)[1] for line in lines if line.startswith("  t=")]
    assert changes == [
        "1m00s  pipeline web-base-nightly: scheduled run web-base 1.4.0/1 starts",
        "1m00s  web-base 1.4.0/1             BUILDING",
        "1m30s  web-base 1.4.0/1             AVAILABLE",
        "2m00s  pipeline web-base-nightly: scheduled run web-base 1.4.0/2 starts",
        "2m00s  web-base 1.4.0/2             BUILDING",
        "2m30s  web-base 1.4.0/2             AVAILABLE",
    ]
    assert lines[-1] == "every build has reached its final status; stopping"


@pytest.mark.timeout(60)
async def test_until_settled_with_an_endless_schedule_says_so_and_serves_on(
    tmp_path: Path,
) -> None:
    scenario = tmp_path / "endless.toml"
    scenario.write_text(SCHEDULED.replace(', until = "2m"', ""))
    async with await anyio.open_process(
        [str(IBWATCH), "simulate", "--scenario", str(scenario), "--until-settled"]
    ) as process:
        assert process.stdout is not None
        text = ""
        with anyio.fail_after(30):
            async for chunk in TextReceiveStream(process.stdout):
                text += chunk
                if "serving until interrupted" in text:
                    break
            process.send_signal(signal.SIGINT)
            returncode = await process.wait()
    assert "pipeline 'web-base-nightly' runs every 60s without an `until`, so the scenario " in (
        text
    )
    assert returncode == 0


async def test_a_port_in_use_is_reported_clearly() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with anyio.fail_after(30):
            done = await ibwatch("simulate", "--scenario", str(DEMO), "--port", str(port))
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
