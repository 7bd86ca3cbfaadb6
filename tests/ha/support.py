"""Replicas of `ibwatch run` sharing one PostgreSQL database: real subprocesses, each
signing with its own access key (so the simulator can say who polled), listening on a
port of their own on loopback, delivering to a webhook receiver the test runs."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import psycopg
from anyio.abc import Process
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks.webhooks import Webhook

from tests.cli.support import IBWATCH, LineReader
from tests.delivery.receiver import Receiver
from tests.support import ACCOUNT, timeline

FAILOVER = 2.0
"""`[ha] failover` of the replicas: heartbeats and standby attempts every 0.4 s."""
HEARTBEAT = FAILOVER / 5
GRACE = 2.0
"""`[shutdown] grace` of the replicas."""
LEADER_GAUGES = {
    "ibwatch_rate_limit_requests_per_second",
    "ibwatch_push_healthy",
    "ibwatch_pipelines_followed",
    "ibwatch_discovery_sources_failing",
}
"""What only the leader exports (besides the outbox's gauges)."""
ARNS = [f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/ha-{n}/1.0.0/1" for n in range(2)]
PIPELINE = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image-pipeline/ha-nightly"
"""A pipeline of the scenario, with no schedule: discovery reads it ENABLED, no build."""
MISSING_PIPELINE = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image-pipeline/ha-nightyl"
"""A pipeline that does not exist (a typo): a source failing to list."""
STEPS = timeline(("BUILDING", 100), ("TESTING", 100), ("AVAILABLE", None))
"""Scenario seconds: the test moves the simulator's clock past each step."""
STATUSES = ["BUILDING", "TESTING", "AVAILABLE"]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HOOK_PATH = "/hooks/SECRET-HA-TEST-PATH"
DATABASE_VARIABLE = "HA_TEST_DATABASE_URL"


def write_config(directory: Path, endpoint_url: str) -> Path:
    """The config every replica runs: the database comes from the environment (its URL
    carries a password), the webhook's URL and secret too. Discovery follows
    PIPELINE and MISSING_PIPELINE, so the leader's discovery gauges have values."""
    arns = ", ".join(f'"{a}"' for a in ARNS)
    pipelines = f'"{PIPELINE}", "{MISSING_PIPELINE}"'
    path = directory / "watcher.toml"
    path.write_text(
        f'[aws]\nregion = "us-east-1"\nendpoint_url = "{endpoint_url}"\n'
        f"[watch]\narns = [{arns}]\npipelines = [{pipelines}]\nmax_tps = 50\n"
        '[watch.intervals]\ndefault = "0.1s"\n'
        '[watch.retry]\nbase = "0.05s"\ncap = "0.2s"\n'
        f'[state]\nurl_env = "{DATABASE_VARIABLE}"\n[ha]\nfailover = "{FAILOVER:g}s"\n'
        '[server]\nlisten = "127.0.0.1:0"\n'
        f'[shutdown]\ngrace = "{GRACE:g}s"\n'
        '[delivery]\nbackoff_base = "0.05s"\nbackoff_cap = "0.2s"\n'
        '[[sinks]]\ntype = "log"\n'
        '[[sinks]]\ntype = "webhook"\nname = "hook"\nurl_env = "HA_TEST_HOOK_URL"\n'
        'secret_env = "HA_TEST_HOOK_SECRET"\ntimeout = "2s"\n'
    )
    return path


@dataclass
class Replica:
    """One `ibwatch run` process and what it printed."""

    name: str
    access_key: str
    process: Process
    reader: LineReader
    port: int = 0

    async def started(self) -> None:
        """Wait until it says it started, and learn the port it listens on."""
        await self.until_logged("ibwatch.started")
        [started] = self.logged("ibwatch.started")
        self.port = int(started["listen"].rpartition(":")[2])

    def logged(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.reader.json_lines() if line.get("event") == event]

    async def until_logged(self, event: str, count: int = 1, seconds: float = 30) -> None:
        await self.reader.until(
            lambda lines: sum(f'"{event}"' in line for line in lines) >= count, seconds
        )

    def changes(self) -> set[tuple[str, str]]:
        """(ARN, status) of each transition this replica committed and logged."""
        return {(c["arn"], c["status"]) for c in self.logged("image.state_changed")}

    async def get(self, path: str) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{self.port}{path}") as response,
        ):
            return response.status, await response.text()

    async def stop(self) -> tuple[int, float]:
        """SIGTERM; its exit code and how many seconds it took to exit."""
        started = anyio.current_time()
        self.process.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            code = await self.process.wait()
        return code, anyio.current_time() - started

    async def families(self) -> set[str]:
        """The names of the metric families it exports, with samples or not (a family
        with none still has its HELP and TYPE lines)."""
        _, text = await self.get("/metrics")
        return {family.name for family in text_string_to_metric_families(text)}

    async def sampled(self) -> set[str]:
        """The names of the metric families it exports at least one sample of."""
        _, text = await self.get("/metrics")
        return {f.name for f in text_string_to_metric_families(text) if f.samples}

    async def metric(self, name: str) -> float:
        """A metric's value, summed over its labels."""
        _, text = await self.get("/metrics")
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        )


@asynccontextmanager
async def replica(
    name: str, config: Path, database_url: str, receiver_url: str
) -> AsyncIterator[Replica]:
    """`ibwatch run` as replica `name`, just spawned (`started()` waits for it); stopped
    after, woken first if the test paused it."""
    access_key = f"AKIDHAREPLICA{name.upper()}"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": access_key,
        DATABASE_VARIABLE: database_url,
        "HA_TEST_HOOK_URL": receiver_url,
        "HA_TEST_HOOK_SECRET": SECRET,
    }
    command = [str(IBWATCH), "run", "--config", str(config), "--log-format", "json"]
    async with (
        await anyio.open_process(command, env=env) as process,
        anyio.create_task_group() as group,
    ):
        reader = LineReader(process)
        group.start_soon(reader.pump)
        running = Replica(name, access_key, process, reader)
        try:
            yield running
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGCONT)
                process.send_signal(signal.SIGTERM)
                with anyio.fail_after(30):
                    await process.wait()


async def until(condition: Callable[[], bool], seconds: float = 30) -> None:
    """Wait for a condition of the world outside the replicas (the receiver, the
    database), checking every 20 ms: they have no event to await."""
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - nothing to await but time
            await anyio.sleep(0.02)


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 30) -> None:
    """`until` for a condition that must ask (the database)."""
    with anyio.fail_after(seconds):
        while not await check():  # noqa: ASYNC110 - the database has no event to await
            await anyio.sleep(0.02)


def arrived(receiver: Receiver) -> dict[tuple[str, str], list[str]]:
    """Each transition (ARN, status) the receiver acknowledged -> the webhook ids it
    came with, one per arrival (a repeat is a duplicate delivery). Every signature
    is checked."""
    verifier = Webhook(SECRET)
    ids: dict[tuple[str, str], list[str]] = {}
    for arrival in receiver.arrivals:
        verifier.verify(arrival.body, arrival.headers)  # raises if the signature is wrong
        data = arrival.json["data"]
        key = (data["image"]["arn"], data["current"]["status"])
        ids.setdefault(key, []).append(arrival.headers["webhook-id"])
    return ids


def all_arrived(receiver: Receiver, statuses: Sequence[str]) -> Callable[[], bool]:
    def check() -> bool:
        got = arrived(receiver)
        return all((arn, status) in got for arn in ARNS for status in statuses)

    return check


def duplicates(ids: dict[tuple[str, str], list[str]]) -> int:
    """Deliveries beyond the first of each transition; asserts they repeat its id."""
    for key, sent in ids.items():
        assert len(set(sent)) == 1, f"{key}: a repeat must carry the same id, got {sent}"
    return sum(len(sent) - 1 for sent in ids.values())


async def stored_events(database_url: str) -> Counter[tuple[str, str]]:
    """(ARN, status) of each event row in the database: 1 each when no replica
    stored one twice."""
    async with await psycopg.AsyncConnection.connect(database_url) as connection:
        cursor = await connection.execute(
            "SELECT build_arn, payload::json #>> '{current,status}' FROM events"
        )
        return Counter((arn, status) for arn, status in await cursor.fetchall())


async def outbox_empty(database_url: str) -> bool:
    async with await psycopg.AsyncConnection.connect(database_url) as connection:
        cursor = await connection.execute("SELECT count(*) FROM deliveries")
        row = await cursor.fetchone()
        return row is not None and row[0] == 0
