"""The simulator's GetLogEvents as the real AWS CLI reads it: `aws logs
get-log-events` (awscli v1, a test dependency; it carries its own copy of botocore,
so this is a second, independent reader of the wire) against the simulator over
loopback, as the README tells users to point it there.

Model facts relied on (botocore's logs/2014-03-28 service-2.json): json 1.1,
`X-Amz-Target: Logs_20140328.GetLogEvents`; startFromHead false (`--no-start-from-head`)
"the latest log events are returned first"; ResourceNotFoundException for an unknown
stream.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import anyio

from tests.engine.test_diagnostics import windows_agent
from watcher.simulator import Simulator
from watcher.testing import FakeClock

GROUP = "/aws/imagebuilder/windows-agent"
STREAM = "3.1.0/12"


def aws_cli() -> str:
    found = shutil.which("aws", path=str(Path(sys.executable).parent))
    assert found, "the AWS CLI is missing: pip install -e '.[test]' (awscli)"
    return found


async def aws_logs(endpoint_url: str, *args: str) -> tuple[int, Any, str]:
    """`aws logs ARGS` in eu-west-1 (the build's Region), with the suite's fake
    credentials and no AWS config file (tests/conftest.py): exit code, parsed JSON
    output (None if none), stderr."""
    done = await anyio.run_process(
        [
            aws_cli(),
            "--endpoint-url",
            endpoint_url,
            "--region",
            "eu-west-1",
            "--output",
            "json",
            "logs",
            *args,
        ],
        check=False,
        env={**os.environ, "AWS_PAGER": ""},
    )
    out = done.stdout.decode()
    return done.returncode, json.loads(out) if out.strip() else None, done.stderr.decode()


async def test_get_log_events_from_the_end_shows_the_failed_builds_last_lines() -> None:
    clock = FakeClock()
    simulator = Simulator(windows_agent(), clock=clock)
    async with simulator as url:
        clock.advance(simulator.settled_at() + 1)
        code, tail, err = await aws_logs(
            url,
            "get-log-events",
            "--log-group-name",
            GROUP,
            "--log-stream-name",
            STREAM,
            "--no-start-from-head",
            "--limit",
            "2",
        )
        _, whole, _ = await aws_logs(
            url,
            "get-log-events",
            "--log-group-name",
            GROUP,
            "--log-stream-name",
            STREAM,
            "--start-from-head",
        )
    assert code == 0, err
    messages = [event["message"] for event in tail["events"]]
    assert messages == [event["message"] for event in whole["events"]][-2:]
    assert messages[1].startswith("Image status: FAILED: Image testing failed")
    assert set(tail) == {"events", "nextForwardToken", "nextBackwardToken"}
    assert simulator.counters.responses["GetLogEvents", "ok"] == 2


async def test_an_unknown_stream_is_the_cli_s_resource_not_found_error() -> None:
    clock = FakeClock()
    simulator = Simulator(windows_agent(), clock=clock)
    async with simulator as url:
        clock.advance(simulator.settled_at() + 1)
        code, out, err = await aws_logs(
            url, "get-log-events", "--log-group-name", GROUP, "--log-stream-name", "3.1.0/99"
        )
    assert code == 255  # awscli v1 exits 255 when the service answered an error
    assert out is None
    assert "(ResourceNotFoundException)" in err
    assert "The specified log stream does not exist." in err
