"""The daemon's FAILED events carry the build's diagnostics, as the one-shot's do:
its engine polls through a metered wrapper, and the workflow look-ups and the log
tail must not be lost behind it. In-process, on virtual time, against the simulator
over loopback. That `ibwatch demo` shows why its failing build failed, its log tail
redacted: tests/cli/test_run_and_demo.py, on the demo that test runs anyway."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog

from tests.cli.in_process import daemon_config, daemon_on, ended, until
from tests.delivery.receiver import receiving
from tests.engine.test_diagnostics import AGENT, windows_agent
from tests.engine.test_log_tail import LAST_FIVE
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


async def test_the_daemons_failed_webhook_carries_the_last_log_lines_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`[diagnostics] log_lines = 5`: the FAILED event a webhook receives carries
    `data.diagnostics.log_tail`, read in the build ARN's Region (eu-west-1, while the
    config's is us-east-1) and redacted before it was stored."""
    clock = VirtualClock()
    config_path = tmp_path / "watcher.toml"
    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as group:
            group.start_soon(clock.drive)
            async with Simulator(windows_agent(), clock=clock) as url, receiving(clock) as hook:
                monkeypatch.setenv("LOG_TAIL_HOOK_URL", hook.url)
                watch = f'arns = ["{AGENT}"]\n[watch.intervals]\ndefault = "30s"\n'
                config_path.write_text(
                    daemon_config(url, tmp_path / "state.db", watch)
                    + '[[sinks]]\ntype = "webhook"\nname = "hook"\nurl_env = "LOG_TAIL_HOOK_URL"\n'
                    + "[diagnostics]\nlog_lines = 5\n"
                )
                async with daemon_on(config_path, clock) as service:
                    await until(lambda: ended(service, AGENT), logs)
                    await until(lambda: any(_failed(a.json) for a in hook.arrivals), logs)
            group.cancel_scope.cancel()
    failed = next(a.json for a in hook.arrivals if _failed(a.json))
    assert failed["data"]["diagnostics"]["log_tail"] == list(LAST_FIVE)
    assert failed["data"]["diagnostics"]["log_stream"] == "3.1.0/12"


def _failed(body: Any) -> bool:
    return bool(body["data"]["current"]["status"] == "FAILED")
