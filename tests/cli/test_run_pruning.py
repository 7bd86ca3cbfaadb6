"""The daemon keeps its state file to `[state] keep_events` of history: pruned at
start and hourly, and a build forgotten that way is not announced again when
discovery lists it after a restart. In-process, on virtual time, against the
simulator over loopback."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import structlog

from tests.support import ACCOUNT, scenario, timeline
from watcher.config import load
from watcher.daemon import Service, open_service, serve
from watcher.simulator import Simulator
from watcher.testing import VirtualClock

VERSION = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/web-base/1.4.0"
BUILD = f"{VERSION}/1"
DAY = 86400.0


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
            open_service(load(config_path), clock=clock) as service,
            anyio.create_task_group() as group,
        ):
            group.start_soon(serve, service, receive, config_path)
            try:
                yield service
            finally:
                await send.send(signal.SIGTERM)  # serve returns once drained


async def test_a_pruned_build_is_neither_kept_nor_announced_again_after_a_restart(
    tmp_path: Path,
) -> None:
    clock = VirtualClock()
    # Created after the version began to be followed (at 0): news when first found.
    build = {"arn": BUILD, "start": 5, "timeline": timeline(("BUILDING", 100), ("AVAILABLE", None))}
    plan = scenario([build])
    config_path = tmp_path / "watcher.toml"
    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as group:
            group.start_soon(clock.drive)
            async with Simulator(plan, clock=clock) as url:
                config_path.write_text(
                    f'[aws]\nregion = "us-east-1"\nendpoint_url = "{url}"\n'
                    f'[watch]\narns = ["{VERSION}"]\ndiscovery_interval = "1m"\n'
                    '[watch.intervals]\ndefault = "1m"\n'
                    f'[state]\npath = "{tmp_path / "state.db"}"\nkeep_events = "1d"\n'
                    '[server]\nlisten = "127.0.0.1:0"\n[[sinks]]\ntype = "log"\n'
                )
                async with daemon_on(config_path, clock) as service:
                    await until(lambda: ended(service, BUILD), logs)
                    announced = [e.current.status.value for e in await service.store.events()]
                # A day passes with the daemon stopped (cheaply, on virtual time).
                await clock.sleep(DAY + 60)
                # Its prune at start forgets the build whole; its discovery may list
                # the build before or after that, and either way must not announce it.
                async with daemon_on(config_path, clock) as service:
                    await until(lambda: any(p["builds"] for p in pruned(logs)), logs)
                    await until(lambda: ended(service, BUILD), logs)
                # Listed again by the next start, from a state file that has forgotten
                # it: history now, recorded and not announced.
                async with daemon_on(config_path, clock) as service:
                    await until(lambda: ended(service, BUILD), logs)
                    assert BUILD in await service.store.load_all()
                    assert await service.store.events() == []
            group.cancel_scope.cancel()
    assert announced == ["BUILDING", "AVAILABLE"]
    (forgot,) = [p for p in pruned(logs) if p["builds"]]
    assert (forgot["events"], forgot["builds"], forgot["older_than_s"]) == (
        len(announced),
        1,
        DAY,
    )


def pruned(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in logs if line["event"] == "state.pruned"]


def ended(service: Service, arn: str) -> bool:
    watch = service.engine.watches.get(arn)
    return watch is not None and watch.ended
