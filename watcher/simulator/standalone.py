"""`ibwatch simulate`: serve a scenario on a port until interrupted, printing the
endpoint URL, each status change the scenario makes and each pipeline run as it
starts, so a person can follow along while pointing the AWS CLI, `ibwatch` or
their own scripts at it. With `--events-queue`, each status change is also pushed
to that SQS queue as an EventBridge event (`watcher.simulator.push`).
"""

from __future__ import annotations

import signal
from typing import TextIO

import anyio

from watcher.simulator.catalog import Build
from watcher.simulator.pipelines import NeverSettles
from watcher.simulator.scenario import Scenario
from watcher.simulator.server import Simulator

_RECHECK = 1.0
"""Real seconds between looks at the account while nothing is known to be due."""
_GRACE = 0.2


async def serve(
    scenario: Scenario,
    *,
    host: str,
    port: int,
    until_settled: bool,
    out: TextIO,
    events_queue: str | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM, or with `until_settled` until every build has ended;
    with `events_queue`, push each status change to that SQS queue meanwhile."""
    simulator = Simulator(scenario, host=host, port=port, events_queue=events_queue)
    async with simulator as endpoint_url:
        _say(out, f"Image Builder simulator serving scenario {scenario.name!r} at {endpoint_url}")
        _say(
            out,
            f"  try: aws imagebuilder get-image --endpoint-url {endpoint_url} "
            f"--region us-east-1 --image-build-version-arn ARN",
        )
        if events_queue is not None:
            _say(out, f"  pushing an EventBridge event per status change to {events_queue}")
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
    """Print each status change, and each pipeline run as it starts, as its moment
    comes. Builds can appear at any time (scheduled runs, runs started over the
    API), so the account is looked at again at least every `_RECHECK` seconds."""
    told: set[tuple[str, int]] = set()
    while True:
        now = simulator.scenario_time()
        for line in _news(simulator, now, told):
            _say(out, line)
        upcoming = simulator.account.next_change_after(now)
        due = None if upcoming is None else simulator.real_time(upcoming)
        wait = _RECHECK if due is None else due - simulator.clock.monotonic()
        # At least a moment, so float rounding at a boundary cannot spin the loop.
        await simulator.clock.sleep(min(max(wait, 0.001), _RECHECK))


def _news(simulator: Simulator, now: float, told: set[tuple[str, int]]) -> list[str]:
    """Lines for every change up to `now` not printed yet, in time order."""
    declared = {image.arn for image in simulator.scenario.images}
    changes: list[tuple[float, int, str]] = []
    for build in simulator.catalog:
        label = f"{build.name} {build.version}/{build.number}"
        for phase in build.phases:
            if phase.begins > now or (build.arn, phase.index) in told:
                continue
            told.add((build.arn, phase.index))
            at = f"  t={_minutes(phase.begins)}  "
            if phase.index == 0 and build.arn not in declared:
                changes.append((phase.begins, 0, at + _new_run(build, label)))
            if phase.ends is None or phase.ends > phase.begins:
                changes.append((phase.begins, 1, at + f"{label:<28} {phase.status}"))
    return [line for _, _, line in sorted(changes)]


def _new_run(build: Build, label: str) -> str:
    if build.source is None:
        return f"build {label} started by a caller"
    if build.build_type == "SCHEDULED":
        return f"pipeline {build.source.name}: scheduled run {label} starts"
    return f"pipeline {build.source.name}: run {label} started by a caller"


async def _stop_when_settled(simulator: Simulator, scope: anyio.CancelScope, out: TextIO) -> None:
    while True:
        try:
            settled = simulator.settled_at()
        except NeverSettles as exc:
            _say(out, f"{exc}; serving until interrupted")
            return
        # A moment past the last change, so its line is printed before we stop.
        wait = settled + _GRACE - simulator.clock.monotonic()
        if wait <= 0:
            break
        # Looked at again: a run started over the API meanwhile moves the moment.
        await simulator.clock.sleep(min(wait, _RECHECK))
    _say(out, "every build has reached its final status; stopping")
    scope.cancel()


def _minutes(scenario_seconds: float) -> str:
    minutes, seconds = divmod(int(scenario_seconds), 60)
    return f"{minutes:3d}m{seconds:02d}s"


def _say(out: TextIO, line: str) -> None:
    out.write(line + "\n")
    out.flush()
