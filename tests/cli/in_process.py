"""The daemon in-process, on virtual time, against the simulator over loopback:
signals come through a memory stream, as `run_daemon` feeds them from the OS."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from tests.support import aws_session
from watcher.config import load
from watcher.daemon import Service, open_service, serve
from watcher.testing import VirtualClock


def daemon_config(url: str, state: Path, watch: str, *, state_keys: str = "") -> str:
    """A config for the simulator at `url`: `watch` is the [watch] table's body."""
    return (
        f'[aws]\nregion = "us-east-1"\nendpoint_url = "{url}"\n'
        f"[watch]\n{watch}"
        f'[state]\npath = "{state}"\n{state_keys}'
        '[server]\nlisten = "127.0.0.1:0"\n[[sinks]]\ntype = "log"\n'
    )


async def until(condition: Callable[[], bool], logs: list[dict[str, Any]]) -> None:
    """Wait for a condition of the daemon, whatever virtual time it takes."""
    with anyio.move_on_after(30):  # real seconds: only a hang reaches it
        while not condition():  # noqa: ASYNC110 - the daemon's state has no event to await
            await anyio.sleep(0.005)
        return
    raise AssertionError(f"never came true; the daemon logged {logs}")


@asynccontextmanager
async def daemon_on(config_path: Path, clock: VirtualClock) -> AsyncIterator[Service]:
    send, receive = anyio.create_memory_object_stream[int](4)
    with send, receive:
        async with (
            open_service(load(config_path), clock=clock, source_session=aws_session()) as service,
            anyio.create_task_group() as group,
        ):
            group.start_soon(serve, service, receive, config_path)
            try:
                yield service
            finally:
                await send.send(signal.SIGTERM)  # serve returns once drained


def ended(service: Service, arn: str) -> bool:
    watch = service.engine.watches.get(arn)
    return watch is not None and watch.ended
