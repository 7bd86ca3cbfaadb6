"""`ibwatch run` as the benchmarks run it: a real daemon process against the embedded
simulator, its JSON log lines read (each stamped with the moment it was read, on the
monotonic clock the simulator's counters also use), signing its calls with an
access key of its own so the simulator can tell whose calls it served.

Every daemon started here is stopped (SIGTERM, then SIGKILL) when its context ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from anyio.abc import Process

from bench.proc_cpu import process_cpu

IBWATCH = Path(sys.executable).parent / "ibwatch"


def write_config(
    path: Path,
    *,
    endpoint_url: str,
    arns: Sequence[str],
    state: dict[str, str],
    watch: dict[str, Any] | None = None,
    intervals: dict[str, str] | None = None,
    ha: dict[str, str] | None = None,
) -> Path:
    """A daemon's config file: these builds, this `[state]`, one log sink (so every
    event gets a delivery row, and the outbox is emptied by delivering it), step
    look-ups off (GetImage is what the benchmarks count), listening on a free port."""
    lines = [
        "[aws]",
        'region = "us-east-1"',
        f"endpoint_url = {json.dumps(endpoint_url)}",
        "[watch]",
        "arns = [" + ", ".join(json.dumps(a) for a in arns) + "]",
        *(f"{k} = {json.dumps(v)}" for k, v in (watch or {}).items()),
    ]
    if intervals:
        lines += ["[watch.intervals]", *(f"{k} = {json.dumps(v)}" for k, v in intervals.items())]
    lines += ["[state]", *(f"{k} = {json.dumps(v)}" for k, v in state.items())]
    if ha:
        lines += ["[ha]", *(f"{k} = {json.dumps(v)}" for k, v in ha.items())]
    lines += [
        "[diagnostics]",
        "progress_share = 0",
        "[server]",
        'listen = "127.0.0.1:0"',
        "[[sinks]]",
        'type = "log"',
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Daemon:
    """One running `ibwatch run` process and the log lines it printed so far."""

    access_key: str
    process: Process
    lines: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    """(time.monotonic() when read, the parsed JSON line)."""
    other: list[str] = field(default_factory=list)
    """Lines that are not JSON (a traceback, a usage error): for the error message."""
    counts: Counter[str] = field(default_factory=Counter)
    """Lines read so far, by event: cheap to ask at every request."""
    reached: dict[tuple[str, int], float] = field(default_factory=dict)
    """(event, n) -> when the n-th line of that event was read, for `watch`ed ones."""
    _watched: set[str] = field(default_factory=set)
    _changed: anyio.Event = field(default_factory=anyio.Event)
    _ended: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        return process_cpu(self.pid)

    def watch(self, event: str) -> None:
        """Note in `reached` when each line of `event` is read."""
        self._watched.add(event)

    def logged(self, event: str) -> list[tuple[float, dict[str, Any]]]:
        return [(at, line) for at, line in self.lines if line.get("event") == event]

    async def until_logged(self, *events: str, after: float = 0.0, seconds: float = 120) -> float:
        """When the first line of one of `events` read after `after` was read."""
        with anyio.fail_after(seconds):
            while True:
                for at, line in self.lines:
                    if at >= after and line.get("event") in events:
                        return at
                if self._ended:
                    raise RuntimeError(f"ibwatch ended before logging {events}: {self.tail()}")
                await self._changed.wait()

    def tail(self, count: int = 5) -> str:
        """The last lines' events and messages, and what it printed that is not JSON."""
        shown = [
            {k: v for k, v in line.items() if k != "config"} for _, line in self.lines[-count:]
        ]
        return " | ".join([json.dumps(line)[:600] for line in shown] + self.other[-20:])

    @property
    def port(self) -> int:
        [(_, started)] = self.logged("ibwatch.started")
        return int(started["listen"].rpartition(":")[2])

    async def get_json(self, path: str) -> Any:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{self.port}{path}") as response,
        ):
            return await response.json()

    async def metric(self, name: str) -> float:
        from prometheus_client.parser import text_string_to_metric_families

        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{self.port}/metrics") as response,
        ):
            text = await response.text()
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        )

    async def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as a node lost or an OOM kill."""
        self.process.kill()
        await self.process.wait()

    async def _pump(self) -> None:
        assert self.process.stdout is not None
        buffer = b""
        async for chunk in self.process.stdout:
            now = time.monotonic()
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                if raw.startswith(b"{"):
                    line = json.loads(raw)
                    self.lines.append((now, line))
                    event = line.get("event")
                    self.counts[event] += 1
                    if event in self._watched:
                        self.reached[event, self.counts[event]] = now
                elif raw.strip():
                    self.other.append(raw.decode(errors="replace"))
            self._changed.set()
            self._changed = anyio.Event()
        self._ended = True
        self._changed.set()


@asynccontextmanager
async def running(
    config: Path, access_key: str, env: dict[str, str] | None = None
) -> AsyncIterator[Daemon]:
    """`ibwatch run --config config`, just spawned; stopped when the context ends."""
    environment = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": "bench-not-a-secret",
        "AWS_EC2_METADATA_DISABLED": "true",
        **(env or {}),
    }
    command = [str(IBWATCH), "run", "--config", str(config), "--log-format", "json"]
    async with (
        await anyio.open_process(command, env=environment, stderr=subprocess.STDOUT) as process,
        anyio.create_task_group() as group,
    ):
        daemon = Daemon(access_key, process)
        group.start_soon(daemon._pump)
        try:
            yield daemon
        finally:
            with anyio.CancelScope(shield=True):
                await _stop(process)


async def _stop(process: Process) -> None:
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    with anyio.move_on_after(20):
        await process.wait()
        return
    process.kill()
    await process.wait()


async def wait_for(condition: Callable[[], bool], seconds: float = 120) -> None:
    """Wait for a condition of the simulator's counters, which have no event to await."""
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - nothing to await but time
            await anyio.sleep(0.01)
