"""The daemon's FAILED events carry the build's diagnostics, as the one-shot's do:
its engine polls through a metered wrapper, and the workflow look-ups must not be
lost behind it. In-process, on virtual time, against the simulator over loopback."""

from __future__ import annotations

from pathlib import Path

import anyio
import structlog

from tests.cli.in_process import daemon_config, daemon_on, ended, until
from tests.support import ACCOUNT, scenario, timeline
from watcher.simulator import Simulator
from watcher.testing import VirtualClock

BUILD = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/web-base/1.4.0/1"


async def test_a_failed_build_seen_by_the_daemon_names_its_failing_step(tmp_path: Path) -> None:
    clock = VirtualClock()
    steps = timeline(("BUILDING", 60), ("TESTING", 60), ("FAILED", None))
    plan = scenario([{"arn": BUILD, "timeline": steps}])
    config_path = tmp_path / "watcher.toml"
    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as group:
            group.start_soon(clock.drive)
            async with Simulator(plan, clock=clock) as url:
                watch = f'arns = ["{BUILD}"]\n[watch.intervals]\ndefault = "30s"\n'
                config_path.write_text(daemon_config(url, tmp_path / "state.db", watch))
                async with daemon_on(config_path, clock) as service:
                    await until(lambda: ended(service, BUILD), logs)
                    events = await service.store.events()
            group.cancel_scope.cancel()
    failed = events[-1]
    assert failed.current.status.value == "FAILED"
    assert failed.diagnostics is not None
    assert failed.diagnostics.failed_step is not None
    assert failed.diagnostics.failed_step.workflow == "TEST"
    assert failed.diagnostics.failed_step.message
    assert failed.diagnostics.log_stream == "1.4.0/1"
    assert all(e.diagnostics is None for e in events[:-1])
