"""Notifications survive a receiver that is down and a daemon that is killed: real
processes, a real receiver on loopback, the simulator's time under the test's control."""

from __future__ import annotations

import os
import signal
import socket
from collections import defaultdict
from pathlib import Path

import anyio
import pytest
from standardwebhooks.webhooks import Webhook

from tests.cli.support import IBWATCH, LineReader
from tests.delivery.receiver import receiving
from tests.support import ACCOUNT, scenario, timeline
from watcher.clock import SystemClock
from watcher.simulator import Simulator
from watcher.testing import FakeClock

ARNS = [f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/crash-{n}/1.0.0/1" for n in range(2)]
STEPS = timeline(("BUILDING", 100), ("TESTING", 100), ("AVAILABLE", None))
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PATH = "/hooks/SECRET-CRASH-TEST-PATH"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def write_config(tmp_path: Path, endpoint_url: str) -> Path:
    arns = ", ".join(f'"{a}"' for a in ARNS)
    path = tmp_path / "watcher.toml"
    path.write_text(
        f'[aws]\nregion = "us-east-1"\nendpoint_url = "{endpoint_url}"\n'
        f'[watch]\narns = [{arns}]\nmax_tps = 50\n[watch.intervals]\ndefault = "0.1s"\n'
        '[state]\npath = "state.db"\n'
        '[delivery]\nbackoff_base = "0.05s"\nbackoff_cap = "0.2s"\n'
        '[[sinks]]\ntype = "log"\n'
        '[[sinks]]\ntype = "webhook"\nname = "hook"\nurl_env = "CRASH_TEST_HOOK_URL"\n'
        'secret_env = "CRASH_TEST_HOOK_SECRET"\ntimeout = "2s"\n'
    )
    return path


def seen(status: str, count: int = len(ARNS)):  # type: ignore[no-untyped-def]
    def check(lines: list[str]) -> bool:
        changes = [c for c in LineReader.parse(lines) if c.get("event") == "image.state_changed"]
        return sum(c["status"] == status for c in changes) >= count

    return check


def retried(lines: list[str]) -> bool:
    return any(c.get("event") == "delivery.retrying" for c in LineReader.parse(lines))


@pytest.mark.timeout(120)
async def test_every_transition_arrives_in_order_after_a_down_receiver_and_a_sigkill(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    port = free_port()  # nothing listens there yet: the receiver is down
    env = {
        **os.environ,
        "CRASH_TEST_HOOK_URL": f"http://127.0.0.1:{port}{PATH}",
        "CRASH_TEST_HOOK_SECRET": SECRET,
    }
    plan = scenario([{"arn": a, "timeline": STEPS} for a in ARNS])
    async with Simulator(plan, clock=clock) as url:
        command = [
            str(IBWATCH),
            "run",
            "--config",
            str(write_config(tmp_path, url)),
            "--log-format",
            "json",
        ]
        async with (
            await anyio.open_process(command, env=env) as first,
            anyio.create_task_group() as group,
        ):
            reader = LineReader(first)
            group.start_soon(reader.pump)
            await reader.until(seen("BUILDING"))
            clock.advance(150)  # TESTING
            await reader.until(seen("TESTING"))
            await reader.until(retried)
            first.send_signal(signal.SIGKILL)
            await first.wait()
        first_log = reader.lines

        clock.advance(100)  # AVAILABLE, while the daemon is down

        async with (
            receiving(SystemClock(), path=PATH, port=port) as receiver,
            await anyio.open_process(command, env=env) as second,
            anyio.create_task_group() as group,
        ):
            reader = LineReader(second)
            group.start_soon(reader.pump)
            await receiver.until(3 * len(ARNS))
            second.send_signal(signal.SIGTERM)
            await second.wait()

    assert all(
        "SECRET-CRASH-TEST-PATH" not in line and SECRET not in line
        for line in first_log + reader.lines
    ), "no secret in any log line"
    by_build: dict[str, list[str]] = defaultdict(list)
    ids_by_transition: dict[tuple[str, str], set[str]] = defaultdict(set)
    verifier = Webhook(SECRET)
    for arrival in receiver.arrivals:
        verifier.verify(arrival.body, arrival.headers)  # raises if the signature is wrong
        data = arrival.json["data"]
        key = (data["image"]["arn"], data["current"]["status"])
        if not ids_by_transition[key]:
            by_build[data["image"]["arn"]].append(data["current"]["status"])
        ids_by_transition[key].add(arrival.headers["webhook-id"])
    assert dict(by_build) == {arn: ["BUILDING", "TESTING", "AVAILABLE"] for arn in ARNS}
    assert all(len(ids) == 1 for ids in ids_by_transition.values()), "a duplicate has the same id"
