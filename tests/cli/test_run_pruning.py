"""The daemon keeps its state file to `[state] keep_events` of history: pruned at
start and hourly, and a build forgotten that way is not announced again when
discovery lists it after a restart. In-process, on virtual time, against the
simulator over loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import structlog

from tests.cli.in_process import daemon_config, daemon_on, ended, until
from tests.support import ACCOUNT, scenario, timeline
from watcher.simulator import Simulator
from watcher.testing import VirtualClock

VERSION = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/web-base/1.4.0"
BUILD = f"{VERSION}/1"
DAY = 86400.0


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
                watch = (
                    f'arns = ["{VERSION}"]\ndiscovery_interval = "1m"\n'
                    '[watch.intervals]\ndefault = "1m"\n'
                )
                state = tmp_path / "state.db"
                config_path.write_text(
                    daemon_config(url, state, watch, state_keys='keep_events = "1d"\n')
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
