"""`ibwatch run` following a scheduled pipeline as a real daemon process: killed
(SIGKILL) while it lists the pipeline's builds and restarted on the same state file,
it reports each new build's transitions once and in order, and its first start
announces no build that had ended before it."""

from __future__ import annotations

import json
import signal
import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

from tests.cli.support import IBWATCH, LineReader
from tests.support import ACCOUNT, scenario, timeline
from watcher.simulator import Simulator
from watcher.testing import FakeClock

HEAD = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}"
PIPELINE = f"{HEAD}:image-pipeline/web-base-nightly"
VERSION = f"{HEAD}:image/web-base/1.4.0"
RUN = timeline(("BUILDING", 50), ("AVAILABLE", None))
HISTORY = f"{HEAD}:image/web-base/1.3.0/1"
"""A build the pipeline made and finished before the daemon ever ran."""


def write_config(tmp_path: Path, endpoint_url: str) -> Path:
    path = tmp_path / "watcher.toml"
    path.write_text(
        f'[aws]\nregion = "us-east-1"\nendpoint_url = "{endpoint_url}"\n'
        f'[watch]\npipelines = ["{PIPELINE}"]\ndiscovery_interval = "0.05s"\nmax_tps = 100\n'
        '[watch.intervals]\ndefault = "0.05s"\n'
        '[state]\npath = "state.db"\n[server]\nlisten = "127.0.0.1:0"\n[[sinks]]\ntype = "log"\n'
    )
    return path


def changes(lines: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("event") == "image.state_changed"]


Condition = Callable[[list[str]], bool]


def shows(*wanted: tuple[int, str]) -> Condition:
    def check(lines: list[str]) -> bool:
        seen = {(c["arn"], c["status"]) for c in changes(LineReader.parse(lines))}
        return all((f"{VERSION}/{build}", status) in seen for build, status in wanted)

    check.__doc__ = "logged: " + ", ".join(f"build {b} {status}" for b, status in wanted)
    return check


class KillWhenListed(Counter[str]):
    """`simulator.counters.requests` that SIGKILLs the daemon as a request to
    ListImagePipelineImages arrives once scenario time has reached `after`, before it
    is answered: the kill lands inside discovery, on the listing that would have
    found the pipeline's new build."""

    def __init__(self, simulator: Simulator, after: float) -> None:
        super().__init__()
        self._simulator = simulator
        self._after = after
        self.victim: anyio.abc.Process | None = None
        self.killed = False

    def __setitem__(self, operation: str, count: int) -> None:
        super().__setitem__(operation, count)
        if (
            operation == "ListImagePipelineImages"
            and self.victim is not None
            and self._simulator.scenario_time() >= self._after
        ):
            self.victim.send_signal(signal.SIGKILL)
            self.victim, self.killed = None, True


async def wait_for(
    reader: LineReader, condition: Condition, *, earlier: Sequence[str] = (), seconds: float = 30
) -> None:
    """Wait until `condition` holds on the lines a previous daemon wrote (`earlier`)
    and this one's so far, for `seconds` at most. Else (`until` kills this one, since
    leaving its process block would wait for it to exit forever) fail with every line
    seen, the previous daemon's included."""
    try:
        await reader.until(lambda lines: condition([*earlier, *lines]), seconds)
    except AssertionError:  # `until` timed out, and killed the daemon
        seen = "\n".join(
            [*earlier, "-- the daemon now:", *reader.lines] if earlier else reader.lines
        )
        raise AssertionError(
            f"not {condition.__doc__} within {seconds} s; the log so far:\n{seen}"
        ) from None


@pytest.mark.timeout(90)
async def test_scheduled_builds_survive_sigkill_during_discovery_and_restart(
    tmp_path: Path,
) -> None:
    # Scenario time moves only when the test says so, from the real date: the daemon
    # tells history (ended before it followed the pipeline) by the builds' dates.
    clock = FakeClock(epoch=datetime.now(UTC))
    plan = scenario(
        [
            {"arn": HISTORY, "pipeline": "web-base-nightly", "timeline": [{"status": "AVAILABLE"}]},
            {"arn": f"{VERSION}/1", "pipeline": "web-base-nightly", "timeline": RUN},
        ],
        pipelines=[
            {
                "arn": PIPELINE,
                "image": VERSION,
                "timeline": RUN,
                "schedule": {"every": "100s", "first": "100s"},
            }
        ],
    )
    simulator = Simulator(plan, clock=clock)
    killer = simulator.counters.requests = KillWhenListed(simulator, after=100)
    async with simulator as url:
        config = write_config(tmp_path, url)
        command = [str(IBWATCH), "run", "--config", str(config), "--log-format", "json"]

        async with await anyio.open_process(command) as first, anyio.create_task_group() as group:
            reader = LineReader(first)
            group.start_soon(reader.pump)
            await wait_for(reader, shows((1, "BUILDING")))
            killer.victim = first
            # Build 1 is AVAILABLE; the schedule starts build 2, and the daemon is
            # killed as it lists the pipeline's builds to find it.
            clock.advance(100)
            with anyio.fail_after(30):
                assert await first.wait() == -signal.SIGKILL
            assert killer.killed
        first_lines = reader.lines
        first_run = changes(reader.json_lines())

        clock.advance(100)  # while the daemon is down: both AVAILABLE, build 3 starts

        async with await anyio.open_process(command) as second, anyio.create_task_group() as group:
            reader = LineReader(second)
            group.start_soon(reader.pump)
            # Build 1's AVAILABLE is told by whichever daemon saw it first: the first
            # one may poll it between the advance and the kill, and then this one,
            # carrying on from the store, rightly never tells it again.
            await wait_for(
                reader,
                shows((1, "AVAILABLE"), (2, "AVAILABLE"), (3, "BUILDING")),
                earlier=first_lines,
            )
            clock.advance(50)
            await wait_for(reader, shows((3, "AVAILABLE")))
            second.send_signal(signal.SIGTERM)
            with anyio.fail_after(20):
                assert await second.wait() == 0
        second_run = changes(reader.json_lines())

    with sqlite3.connect(tmp_path / "state.db") as db:
        stored = [json.loads(p) for (p,) in db.execute("SELECT payload FROM events ORDER BY seq")]
        remembered = {arn for (arn,) in db.execute("SELECT arn FROM watched")}
    # The first start recorded the build that had ended before it, and told no one.
    assert HISTORY in remembered
    assert [e for e in stored if e["image"]["arn"] == HISTORY] == []
    assert [c for c in first_run + second_run if c["arn"] == HISTORY] == []
    per_build: dict[int, list[tuple[str | None, str]]] = {}
    for event in stored:
        per_build.setdefault(event["image"]["build"], []).append(
            (event["previous"]["status"] if event["previous"] else None, event["current"]["status"])
        )
    # Build 1 was in progress at the first start: announced, not recorded silently.
    # Build 2, never found by the killed daemon, is found by the next one after it
    # ended: created after the pipeline was first followed, so it is news.
    assert per_build[1] == [(None, "BUILDING"), ("BUILDING", "AVAILABLE")]
    assert per_build[2] == [(None, "AVAILABLE")]
    assert per_build[3] == [(None, "BUILDING"), ("BUILDING", "AVAILABLE")]
    assert {e["watched"] for e in stored} == {PIPELINE}
    assert len({e["id"] for e in stored}) == len(stored)
    logged = first_run + second_run
    assert {c["id"] for c in logged} == {e["id"] for e in stored}
