"""Interrupting a one-shot wait with a real signal to a real subprocess: it must
never exit 0 (a CI script runs `ibwatch ... && deploy`), and it says where it was."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from tests.cli.support import IBWATCH
from tests.support import ACCOUNT, scenario, timeline
from watcher.simulator import Simulator

SLOW = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/slow/1.0.0/1"


async def read_stderr_until(process: Process, marker: str, seen: list[str]) -> None:
    """Collect stderr into `seen` until `marker` has appeared."""
    assert process.stderr is not None
    with anyio.fail_after(30):
        async for chunk in process.stderr:
            seen.append(chunk.decode())
            if marker in "".join(seen):
                return


async def interrupted_wait(tmp_path: Path, signum: int) -> tuple[int, str, str, dict[str, str]]:
    outputs = tmp_path / "github_output"
    plan = scenario([{"arn": SLOW, "timeline": timeline(("BUILDING", None))}])
    async with Simulator(plan) as url:
        command = [
            str(IBWATCH),
            "wait-until-available",
            "--endpoint-url",
            url,
            "--interval",
            "0.1s",
            SLOW,
        ]
        env = {**os.environ, "GITHUB_OUTPUT": str(outputs)}
        async with await anyio.open_process(command, env=env) as process:
            seen: list[str] = []
            await read_stderr_until(process, "is BUILDING", seen)
            process.send_signal(signum)
            with anyio.fail_after(20):
                code = await process.wait()
            assert process.stdout is not None
            assert process.stderr is not None
            out = b""
            async for chunk in process.stdout:
                out += chunk
            rest = b""
            async for chunk in process.stderr:
                rest += chunk
            stdout = out.decode()
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    return code, stdout, "".join(seen) + rest.decode(), values


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
async def test_an_interrupted_wait_exits_128_plus_the_signal_and_says_where_it_was(
    tmp_path: Path, signum: int, code: int
) -> None:
    exit_code, stdout, stderr, outputs = await interrupted_wait(tmp_path, signum)
    name = signal.Signals(signum).name
    assert exit_code == code
    assert stdout.splitlines() == [f"{SLOW}  BUILDING  (still in progress when {name} came)"]
    assert (outputs["status"], outputs["exit_code"]) == ("INTERRUPTED", str(code))
    assert "Task was destroyed" not in stderr
    assert "Traceback" not in stderr


async def test_an_interrupted_demo_exits_130_without_a_traceback() -> None:
    async with await anyio.open_process([str(IBWATCH), "demo"]) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        with anyio.fail_after(30):
            async for chunk in process.stdout:
                if b"is PENDING" in chunk or b"is CREATING" in chunk:
                    break
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(20):
            code = await process.wait()
        errors = b""
        async for chunk in process.stderr:
            errors += chunk
    assert code == 130
    assert b"Traceback" not in errors
    assert b"Task was destroyed" not in errors
