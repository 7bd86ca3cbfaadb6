"""`ibwatch run` as a real daemon process: killed mid-build and restarted on the
same state file, it neither repeats an event nor misses a transition; the state
file's lock keeps a second daemon off it, and dies with its daemon."""

from __future__ import annotations

import json
import signal
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.cli.in_thread import ibwatch
from tests.cli.support import IBWATCH, LineReader
from tests.support import ACCOUNT, scenario, timeline
from watcher.simulator import Simulator
from watcher.testing import FakeClock

ARNS = [f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/img-{n}/1.0.0/1" for n in range(3)]
STEPS = timeline(("BUILDING", 600), ("TESTING", 300), ("DISTRIBUTING", 100), ("AVAILABLE", None))


def write_config(tmp_path: Path, endpoint_url: str) -> Path:
    arns = ", ".join(f'"{a}"' for a in ARNS)
    path = tmp_path / "watcher.toml"
    path.write_text(
        f'[aws]\nregion = "us-east-1"\nendpoint_url = "{endpoint_url}"\n'
        f'[watch]\narns = [{arns}]\nmax_tps = 50\n[watch.intervals]\ndefault = "0.1s"\n'
        f'[state]\npath = "state.db"\n[server]\nlisten = "127.0.0.1:0"\n[[sinks]]\ntype = "log"\n'
    )
    return path


def changes(lines: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("event") == "image.state_changed"]


def has_status(status: str) -> Any:
    def check(lines: list[str]) -> bool:
        seen = {(c["arn"], c["status"]) for c in changes(LineReader.parse(lines))}
        return all((arn, status) in seen for arn in ARNS)

    return check


@pytest.mark.timeout(90)
async def test_sigkill_mid_build_then_restart_repeats_nothing_and_misses_nothing(
    tmp_path: Path,
) -> None:
    """Also shows that the lock of a killed daemon does not outlive it: the restart
    on its state file starts and runs (one daemon start fewer than a test of its own)."""
    clock = FakeClock()  # the simulator's time moves only when the test says so
    async with Simulator(
        scenario([{"arn": a, "timeline": STEPS} for a in ARNS]), clock=clock
    ) as url:
        config = write_config(tmp_path, url)
        command = [str(IBWATCH), "run", "--config", str(config), "--log-format", "json"]

        async with await anyio.open_process(command) as first, anyio.create_task_group() as group:
            reader = LineReader(first)
            group.start_soon(reader.pump)
            await reader.until(has_status("BUILDING"))
            first.send_signal(signal.SIGKILL)
            assert await first.wait() == -signal.SIGKILL
        first_run = changes(reader.json_lines())

        clock.advance(1000)  # while the daemon is down: TESTING, DISTRIBUTING, AVAILABLE

        async with await anyio.open_process(command) as second, anyio.create_task_group() as group:
            reader = LineReader(second)
            group.start_soon(reader.pump)
            try:
                await reader.until(lambda lines: any('"ibwatch.started"' in x for x in lines))
            except AssertionError as exc:
                raise AssertionError(f"the killed daemon's lock outlived it: {exc}") from None
            await reader.until(has_status("AVAILABLE"))
            second.send_signal(signal.SIGTERM)
            with anyio.fail_after(20):
                assert await second.wait() == 0
        second_run = changes(reader.json_lines())

    # The store holds each transition exactly once: BUILDING seen before the kill,
    # then BUILDING -> AVAILABLE with what happened while the daemon was down.
    with sqlite3.connect(tmp_path / "state.db") as db:
        stored = [json.loads(p) for (p,) in db.execute("SELECT payload FROM events ORDER BY seq")]
    per_build = {
        arn: [
            (
                e["previous"]["status"] if e["previous"] else None,
                e["current"]["status"],
                tuple(e["skipped"]),
            )
            for e in stored
            if e["image"]["arn"] == arn
        ]
        for arn in ARNS
    }
    assert per_build == {
        arn: [(None, "BUILDING", ()), ("BUILDING", "AVAILABLE", ("TESTING", "DISTRIBUTING"))]
        for arn in ARNS
    }
    # The log sink is fed from the outbox: at least once, so a line the kill cut short
    # is written again after the restart, under the same id, and nothing else is.
    logged = first_run + second_run
    assert {c["id"] for c in logged} == {e["id"] for e in stored}
    by_id = {e["id"]: e for e in stored}
    assert all(
        (c["arn"], c["status"])
        == (by_id[c["id"]]["image"]["arn"], by_id[c["id"]]["current"]["status"])
        for c in logged
    )
    assert [c["status"] for c in second_run].count("AVAILABLE") == len(ARNS)


@pytest.mark.timeout(60)
async def test_a_second_daemon_on_the_same_state_file_exits_2_naming_the_first(
    tmp_path: Path,
) -> None:
    """Two daemons on one state file would post every transition twice. The second
    runs in-process (`tests/cli/in_thread.py`): the lock is the kernel's, held by the
    first daemon's process against any other, and the second is refused before it
    takes a signal."""
    async with Simulator(scenario([{"arn": a, "timeline": STEPS} for a in ARNS])) as url:
        config = write_config(tmp_path, url)
        command = [str(IBWATCH), "run", "--config", str(config), "--log-format", "json"]
        async with await anyio.open_process(command) as first, anyio.create_task_group() as group:
            reader = LineReader(first)
            group.start_soon(reader.pump)
            await reader.until(has_status("BUILDING"))
            with anyio.fail_after(10):
                second = await ibwatch(*command[1:])
            first.send_signal(signal.SIGTERM)
            assert await first.wait() == 0
    assert second.returncode == 2
    message = second.stderr
    assert f"{tmp_path / 'state.db'}: is in use by another ibwatch (pid {first.pid})" in message
    assert "Traceback" not in message
