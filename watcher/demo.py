"""`ibwatch demo`: the daemon's engine, outbox and sinks with the embedded simulator
in one process.

Plays the demo scenario, prints each transition as it happens, and exits 0 once
every build in the scenario has ended and every event was delivered; the closing
summary says why each failed build failed, with the last lines of its build log
(redacted: the demo's failing build logs a password on purpose). Needs no AWS
account: the simulator takes any credentials, so the demo signs with placeholder
ones of its own.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TextIO

import anyio
from aiobotocore.session import AioSession

from watcher.clock import Clock
from watcher.config import from_mapping
from watcher.daemon import open_service
from watcher.diagnostics import Diagnostics
from watcher.engine import Watch
from watcher.model import ImageStatus, Transition
from watcher.simulator import Simulator, load_scenario
from watcher.summary import duration_text
from watcher.wait import diagnostics_block

# Shipped inside the package so `ibwatch demo` works wherever it is installed;
# config/demo-scenario.toml in the repository is a link to it.
DEMO_SCENARIO = Path(__file__).resolve().parent / "simulator" / "scenarios" / "demo.toml"
LOG_LINES = 5
"""The build log lines a FAILED event carries in the demo (`[diagnostics] log_lines`)."""


async def run_demo(scenario_path: Path, *, clock: Clock, out: TextIO, interval: float = 0.5) -> int:
    scenario = load_scenario(scenario_path)
    pipelines = [str(pipeline.arn) for pipeline in scenario.pipelines]
    # Builds no pipeline made are watched by their own ARN; the rest are found by
    # following their pipelines, as a platform team's daemon would.
    names = {pipeline.pipeline_name for pipeline in scenario.pipelines}
    arns = [image.arn for image in scenario.images if image.pipeline not in names]
    session = AioSession()
    session.set_credentials("DEMOACCESSKEY", "demo-secret-not-used-by-the-simulator")
    started = clock.monotonic()
    with tempfile.TemporaryDirectory(prefix="ibwatch-demo-") as state_dir:
        config = from_mapping(
            {
                "aws": {"region": "us-east-1"},
                "watch": {
                    "arns": arns,
                    "pipelines": pipelines,
                    "discovery_interval": interval * 2,
                    "intervals": {"default": interval},
                    # The demo account's GetImage quota (its scenario's rate limit).
                    "max_tps": 20,
                },
                "state": {"path": str(Path(state_dir) / "demo-state.db")},
                "sinks": [{"type": "log"}],
                "diagnostics": {"log_lines": LOG_LINES},
            },
            source="ibwatch demo",
        )
        simulator = Simulator(scenario, clock=clock)
        async with simulator as endpoint_url:
            _say(
                out,
                f"ibwatch demo: following {len(pipelines)} pipelines and {len(arns)} builds on "
                f"the embedded simulator at {endpoint_url} (scenario {scenario.name!r}, "
                f"{scenario.time_scale:g}x speed)",
            )
            async with open_service(
                config, clock=clock, endpoint_url=endpoint_url, source_session=session
            ) as service:
                await service.source.warm(arns + pipelines)
                failures = _Failures()
                service.engine.add_listener(failures)

                async def finish_once_settled() -> None:
                    # Past the scenario's last change, list once more so the last
                    # scheduled run is found, then stop when every build has ended.
                    await clock.sleep(max(0.0, simulator.settled_at() - clock.monotonic()))
                    await service.discovery.discover_once()
                    service.engine.finish_when_ended()

                async with anyio.create_task_group() as group:
                    group.start_soon(service.dispatcher.run)
                    group.start_soon(service.discovery.run)
                    group.start_soon(finish_once_settled)
                    result = await service.engine.run(arns)
                    await service.dispatcher.drained()
                    group.cancel_scope.cancel()
    # Discovery finds builds in no set order: list them by image and build.
    watches = sorted(result.watches.values(), key=_by_image)
    # Why each failed build failed, then the list of every build as the last lines.
    for watch in watches:
        snapshot = watch.tracked.snapshot if watch.tracked else None
        diagnostics = failures.by_build.get(snapshot.arn) if snapshot else None
        if diagnostics is not None and snapshot and snapshot.status is ImageStatus.FAILED:
            _say(out, f"ibwatch demo: why {_name(watch)} failed:")
            for line in diagnostics_block(diagnostics):
                _say(out, line)
    _say(
        out,
        f"ibwatch demo: every build has ended after {duration_text(clock.monotonic() - started)}:",
    )
    for watch in watches:
        snapshot = watch.tracked.snapshot if watch.tracked else None
        status = snapshot.status.value if snapshot else f"error: {watch.error}"
        _say(out, f"  {_name(watch):<28} {status}")
    return 0


def _name(watch: Watch) -> str:
    snapshot = watch.tracked.snapshot if watch.tracked else None
    return f"{snapshot.name} {snapshot.version}/{snapshot.build}" if snapshot else watch.arn


class _Failures:
    """The diagnostics of each build's FAILED event, for the summary: the log sink's
    line names the failed step, not the log."""

    def __init__(self) -> None:
        self.by_build: dict[str, Diagnostics] = {}

    async def send(self, event: Transition) -> None:
        if event.diagnostics is not None:
            self.by_build[event.image.arn] = event.diagnostics


def _by_image(watch: Watch) -> tuple[str, str, int]:
    snapshot = watch.tracked.snapshot if watch.tracked else None
    return (snapshot.name, snapshot.version, snapshot.build) if snapshot else (watch.arn, "", 0)


def _say(out: TextIO, line: str) -> None:
    out.write(line + "\n")
    out.flush()
