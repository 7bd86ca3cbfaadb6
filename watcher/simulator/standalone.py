"""`ibwatch simulate`: serve a scenario on a port until interrupted, printing the
endpoint URL and each status change the scenario makes, so a person can follow
along while pointing the AWS CLI, `ibwatch` or their own scripts at it.
"""

from __future__ import annotations

import signal
from typing import TextIO

import anyio

from watcher.simulator.scenario import Scenario
from watcher.simulator.server import Simulator


async def serve(
    scenario: Scenario, *, host: str, port: int, until_settled: bool, out: TextIO
) -> None:
    """Serve until SIGINT/SIGTERM, or with `until_settled` until every build has ended."""
    simulator = Simulator(scenario, host=host, port=port)
    async with simulator as endpoint_url:
        _say(out, f"Image Builder simulator serving scenario {scenario.name!r} at {endpoint_url}")
        _say(
            out,
            f"  try: aws imagebuilder get-image --endpoint-url {endpoint_url} "
            f"--region us-east-1 --image-build-version-arn ARN",
        )
        async with anyio.create_task_group() as group:
            group.start_soon(_narrate, simulator, out)
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                if until_settled:
                    group.start_soon(_stop_when_settled, simulator, group.cancel_scope, out)
                async for signum in signals:
                    _say(out, f"stopping on {signal.Signals(signum).name}")
                    group.cancel_scope.cancel()
                    break


async def _narrate(simulator: Simulator, out: TextIO) -> None:
    """Print each scenario status change as its moment comes."""
    changes = sorted(
        (phase.begins, build.arn, f"{build.name} {build.version}/{build.number}", phase.status)
        for build in simulator.catalog
        for phase in build.phases
        if phase.ends is None or phase.ends > phase.begins
    )
    for at, _, label, status in changes:
        wait = simulator.real_time(at) - simulator.clock.monotonic()
        if wait > 0:
            await simulator.clock.sleep(wait)
        _say(out, f"  t={_minutes(at)}  {label:<28} {status}")


async def _stop_when_settled(simulator: Simulator, scope: anyio.CancelScope, out: TextIO) -> None:
    wait = simulator.settled_at() - simulator.clock.monotonic()
    # A moment past the last change, so its line is printed before we stop.
    await simulator.clock.sleep(max(0.0, wait) + 0.2)
    _say(out, "every build has reached its final status; stopping")
    scope.cancel()


def _minutes(scenario_seconds: float) -> str:
    minutes, seconds = divmod(int(scenario_seconds), 60)
    return f"{minutes:3d}m{seconds:02d}s"


def _say(out: TextIO, line: str) -> None:
    out.write(line + "\n")
    out.flush()
