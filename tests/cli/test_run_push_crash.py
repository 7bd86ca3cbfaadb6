"""A push event is deleted from its queue only after the poll it caused is committed:
`ibwatch run` as a real process, killed with SIGKILL between receiving a message and
committing its poll, gets the message again after a restart and records the
transition once. Real SQS (moto's server) and the simulator on loopback.

The window between receive and commit is made wide, not timed: the first daemon's
`max_tps` lets one call through every 100 s, and its first poll took that one, so the
event's GetImage waits in the rate limiter while the test kills the process.
"""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.cli.support import IBWATCH, LineReader
from tests.cli.test_run_push import state_change
from tests.sqs_support import REGION, make_queue
from tests.support import ACCOUNT, aws_client, scenario, timeline
from watcher.simulator import Simulator
from watcher.testing import FakeClock

BUILD = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/web-base/1.4.0/1"


def write_config(tmp_path: Path, endpoint_url: str, queue_url: str, max_tps: float) -> Path:
    path = tmp_path / "watcher.toml"
    path.write_text(
        f'[aws]\nregion = "us-east-1"\nendpoint_url = "{endpoint_url}"\n'
        f'[watch]\narns = ["{BUILD}"]\nmax_tps = {max_tps}\n'
        '[watch.intervals]\ndefault = "1h"\n'
        f'[events]\nqueue_url = "{queue_url}"\nwait_time = 1\nvisibility_timeout = 2\n'
        "[diagnostics]\nprogress_share = 0\n"
        '[state]\npath = "state.db"\n[server]\nlisten = "127.0.0.1:0"\n[[sinks]]\ntype = "log"\n'
    )
    return path


def logged(event: str, **fields: Any) -> Any:
    def check(lines: list[str]) -> bool:
        return any(
            line.get("event") == event and all(line.get(k) == v for k, v in fields.items())
            for line in LineReader.parse(lines)
        )

    return check


@pytest.mark.timeout(90)
async def test_a_message_received_but_not_committed_comes_back_and_counts_once(
    tmp_path: Path, sqs_endpoint: str
) -> None:
    clock = FakeClock()  # the simulator's time moves only when the test says so
    plan = scenario([{"arn": BUILD, "timeline": timeline(("BUILDING", 600), ("AVAILABLE", None))}])
    queue_url = await make_queue(sqs_endpoint, "ibwatch-events")
    async with Simulator(plan, clock=clock) as url, aws_client("sqs", sqs_endpoint, REGION) as sqs:
        slow = write_config(tmp_path, url, queue_url, max_tps=0.01)
        command = [str(IBWATCH), "run", "--config", str(slow), "--log-format", "json"]
        async with (
            await anyio.open_process([*command, "--log-level", "debug"]) as first,
            anyio.create_task_group() as group,
        ):
            reader = LineReader(first)
            group.start_soon(reader.pump)
            await reader.until(logged("image.state_changed", status="BUILDING"))
            clock.advance(700)  # AVAILABLE now
            await sqs.send_message(
                QueueUrl=queue_url, MessageBody=state_change(BUILD, "BUILDING", "AVAILABLE")
            )
            await reader.until(logged("push.received", arn=BUILD))
            first.send_signal(signal.SIGKILL)
            assert await first.wait() == -signal.SIGKILL
        assert not logged("image.state_changed", status="AVAILABLE")(reader.lines)

        fast = write_config(tmp_path, url, queue_url, max_tps=50)
        command = [str(IBWATCH), "run", "--config", str(fast), "--log-format", "json"]
        async with (
            await anyio.open_process([*command, "--log-level", "debug"]) as second,
            anyio.create_task_group() as group,
        ):
            reader = LineReader(second)
            group.start_soon(reader.pump)
            # The message comes back once its visibility timeout (2 s) is over.
            await reader.until(logged("push.received", arn=BUILD))
            await reader.until(logged("image.state_changed", status="AVAILABLE"))
            await reader.until(logged("push.handled", arn=BUILD))
            assert await queued(sqs, queue_url) == 0, "deleted after the commit"
            second.send_signal(signal.SIGTERM)
            with anyio.fail_after(20):
                assert await second.wait() == 0

    with sqlite3.connect(tmp_path / "state.db") as db:
        stored = [json.loads(p) for (p,) in db.execute("SELECT payload FROM events ORDER BY seq")]
    assert [e["current"]["status"] for e in stored] == ["BUILDING", "AVAILABLE"]


async def queued(sqs: Any, queue_url: str) -> int:
    found = await sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )
    return sum(int(v) for v in found["Attributes"].values())
