"""The push fast path end to end, in-process: the simulator pushes an EventBridge event
per status change to a real SQS queue (moto's server on loopback), the daemon reads
that queue, and every transition of every build is detected once; with 30% of the
events lost and some duplicated or reordered, each is still detected within
`[events] safety_interval` of the change.

How time moves, and why the outcome does not depend on how fast the machine is: the
virtual clock is held for the whole play, so only the test moves it (`Player`). It
moves from one moment to the next that matters: the next status change of the
scenario (`next_change_after`, the scenario's timelines) or the next scheduled poll
of a build in progress (`Watch.due`), whichever comes first. Before each move it
waits until the daemon has handled everything due by then (`Player.settled`):

- every message the simulator sends by now was sent: how many that is comes from
  replaying the simulator's own seeded `EventStream` over the same changes (it is
  pure), so a send still on its way to the queue cannot be missed;
- the daemon received as many messages as were sent, and handled each one (matched,
  dropped or malformed: counted only after its poll was committed);
- no build is being polled, and no build in progress is due at or before now (after
  its poll, a build's next due time lies ahead).

Within a moment, the daemon's calls queue one by one for the shared rate limiter,
whose tokens come only with time: while one waits (`limiter.queued`), time steps a
millisecond (max_tps = 1000). Should the daemon still be busy after a while with
nothing waiting on the limiter, time steps that millisecond too, as a free-running
virtual clock would during slow I/O; a step never passes the next moment that
matters by more than that. So polls happen at the moment they are due, events are
handled at the moment their change happened, and the virtual times the assertions
read are the same on a fast machine and a slow one.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

import anyio
import pytest
import structlog

from tests.cli.in_process import daemon_config, daemon_on, until
from tests.engine.test_engine_simulator import without_faults
from tests.sqs_support import make_queue
from tests.support import ACCOUNT, scenario, timeline
from watcher.daemon import Service
from watcher.model import Transition
from watcher.simulator import Scenario, Simulator, load_scenario
from watcher.simulator.push import EventStream, PushCounters, status_changes
from watcher.testing import VirtualClock

DEMO = Path(__file__).parents[2] / "config" / "demo-scenario.toml"
MAX_TPS = 1000.0
TICK = 1 / MAX_TPS
"""Seconds one step of time lets the rate limiter pass one more call."""
NUDGE = 1e-6
"""Added to each move, so that scenario time (clock x time_scale) is past the change
the move aims at despite float rounding."""


class SentMessages:
    """How many messages the simulator's pusher has sent by the scenario time now:
    its seeded stream of messages, replayed over the same changes (both are pure)."""

    def __init__(self, simulator: Simulator) -> None:
        plan = simulator.scenario
        self._simulator = simulator
        self._stream = EventStream(plan.events, plan.seed, PushCounters())
        self._told: set[tuple[str, int, str, float]] = set()
        self._last: dict[str, str] = {}
        self._count = 0

    def by_now(self) -> int:
        now = self._simulator.scenario_time()
        for change in status_changes(self._simulator.catalog, now, self._told, self._last):
            self._count += len(self._stream.offer(change))
        if self._simulator.account.next_change_after(now) is None:
            self._count += len(self._stream.flush())
        return self._count


@dataclass
class Player:
    """Moves the held clock from moment to moment (the module docstring says how)."""

    service: Service
    simulator: Simulator
    clock: VirtualClock
    logs: list[dict[str, Any]]
    sent: SentMessages
    nudges: int = 0
    """Steps taken while the daemon was busy with nothing on the limiter."""

    def counted(self, outcome: str) -> int:
        return int(self.service.metrics.push_events.labels(outcome)._value.get())

    def settled(self) -> bool:
        service, push = self.service, self.service.push
        if not (service.engine.running and push and push.health.healthy):
            return False
        if service.discovery.passes < 1:
            return False
        counters = self.simulator.push_counters
        if counters.sent + counters.failed < self.sent.by_now():
            return False  # a send is still on its way
        received = self.counted("received")
        if received < counters.sent:
            return False
        handled = self.counted("matched") + self.counted("dropped") + self.counted("malformed")
        if handled < received:
            return False
        now = self.clock.monotonic()
        return all(
            not watch.lock.locked() and (watch.ended or watch.due > now)
            for watch in service.engine.watches.values()
        )

    async def settle(self) -> None:
        idle = 0
        with anyio.move_on_after(30):  # real seconds: only a hang reaches it
            while not self.settled():
                if self.service.engine.limiter.queued:
                    self.clock.advance(TICK)
                    idle = 0
                elif idle >= 25:
                    self.clock.advance(TICK)
                    self.nudges += 1
                    idle = 0
                else:
                    idle += 1
                await anyio.sleep(0.002)
            return
        raise AssertionError(f"the daemon never settled; it logged {self.logs[-20:]}")

    def next_moment(self) -> float | None:
        """The next status change, or the next poll of a build in progress; None once
        every change has happened and every build has ended."""
        change = self.simulator.account.next_change_after(self.simulator.scenario_time())
        moments = [] if change is None else [self.simulator.real_time(change)]
        watches = self.service.engine.watches.values()
        moments += [w.due for w in watches if not w.ended and w.entry is not None]
        if change is None and all(w.ended for w in watches):
            return None
        return min(moments, default=None)

    async def play(self) -> None:
        """Play the whole scenario, then wait for the last deliveries to the log sink."""
        while True:
            await self.settle()
            moment = self.next_moment()
            if moment is None:
                break
            self.clock.advance(max(0.0, moment - self.clock.monotonic()) + NUDGE)

    def clock_time(self, event: Transition) -> float:
        """When, on the clock's monotonic seconds, the event's poll saw the change."""
        epoch = self.clock.now() - timedelta(seconds=self.clock.monotonic())
        return (event.observed_at - epoch).total_seconds()


@asynccontextmanager
async def playing(
    tmp_path: Path, sqs_endpoint: str, plan: Scenario, watch: str, events: str
) -> AsyncIterator[Player]:
    """The simulator pushing to a moto queue and the daemon reading it, on one held
    virtual clock; released on the way out, so that the daemon drains and stops."""
    clock = VirtualClock()
    queue_url = await make_queue(sqs_endpoint, "ibwatch-events")
    config_path = tmp_path / "watcher.toml"
    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as group:
            group.start_soon(clock.drive)
            with clock.held():
                async with AsyncExitStack() as stack:
                    simulator = Simulator(plan, clock=clock, events_queue=queue_url)
                    url = await stack.enter_async_context(simulator)
                    text = daemon_config(url, tmp_path / "state.db", watch).replace(
                        "[state]",
                        f'[events]\nqueue_url = "{queue_url}"\nwait_time = 1\n{events}'
                        "[diagnostics]\nprogress_share = 0\n[state]",
                    )
                    config_path.write_text(text)
                    service = await stack.enter_async_context(daemon_on(config_path, clock))
                    yield Player(service, simulator, clock, logs, SentMessages(simulator))
            group.cancel_scope.cancel()


def watch_body(*, arns: Sequence[str], pipelines: Sequence[str] = (), interval: str) -> str:
    """The [watch] table. No jitter: with it, a poll at the safety interval comes up
    to `jitter` x safety_interval later, and the bound checked here would not hold."""
    quoted = ", ".join(f'"{a}"' for a in arns)
    followed = ", ".join(f'"{p}"' for p in pipelines)
    return (
        f"arns = [{quoted}]\npipelines = [{followed}]\n"
        f'discovery_interval = "1h"\nmax_tps = {MAX_TPS:g}\njitter = 0\n'
        f'[watch.intervals]\ndefault = "{interval}"\n'
    )


def statuses_by_build(events: list[Transition]) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for event in events:
        seen.setdefault(event.image.arn, []).append(event.current.status.value)
    return seen


def timelines(plan: Scenario, simulator: Simulator) -> dict[str, list[str]]:
    """Each build's statuses as the scenario's timelines say: its own for each image,
    its pipeline's for each run a pipeline's schedule started."""
    expected = {image.arn: [step.status for step in image.timeline] for image in plan.images}
    for build in simulator.catalog:
        if build.arn not in expected:
            (pipeline,) = [p for p in plan.pipelines if build.arn.startswith(f"{p.image}/")]
            expected[build.arn] = [step.status for step in pipeline.timeline]
    return expected


def lags(player: Player, events: list[Transition]) -> list[tuple[str, str, float]]:
    """(build, status, seconds on the clock from the change to the poll that saw it)."""
    found = []
    for event in events:
        status = event.current.status.value
        changed = player.simulator.entered_at(event.image.arn, status)
        assert changed is not None, (event.image.arn, status)
        found.append((event.image.arn, status, player.clock_time(event) - changed))
    return found


async def delivered(player: Player, events: list[Transition]) -> list[str]:
    """The ids of the log sink's lines, once it has had every stored event."""

    def ids() -> list[str]:
        return [line["id"] for line in player.logs if line["event"] == "image.state_changed"]

    await until(lambda: len(ids()) >= len(events), player.logs)
    return ids()


class Outcome(NamedTuple):
    """A played scenario: what the daemon stored, which event ids reached the sink,
    what the simulator pushed, how many messages matched, each change's lag."""

    stored: list[Transition]
    ids: list[str]
    counters: PushCounters
    matched: int
    found: list[tuple[str, str, float]]


async def played(player: Player) -> Outcome:
    await player.play()
    stored = await player.service.store.events()
    ids = await delivered(player, stored)
    return Outcome(
        stored, ids, player.simulator.push_counters, player.counted("matched"), lags(player, stored)
    )


@pytest.mark.timeout(60)
async def test_every_transition_of_the_demo_comes_by_push(
    tmp_path: Path, sqs_endpoint: str
) -> None:
    """The daemon follows the demo's pipelines as `ibwatch demo` does, but polls each
    build only hourly (and lists hourly): every transition is seen right at its change,
    so by the poll an event caused. The scenario plays out in under a minute of
    virtual time: no scheduled poll after the first one falls within it."""
    plan = without_faults(load_scenario(DEMO))
    names = {pipeline.pipeline_name for pipeline in plan.pipelines}
    watch = watch_body(
        arns=[image.arn for image in plan.images if image.pipeline not in names],
        pipelines=[str(pipeline.arn) for pipeline in plan.pipelines],
        interval="1h",
    )
    events = 'safety_interval = "2h"\n'
    async with playing(tmp_path, sqs_endpoint, plan, watch, events) as player:
        outcome = await played(player)
        stored, ids, counters, matched, found = outcome
        expected = timelines(plan, player.simulator)
        scheduled_runs = len(expected) - len(plan.images)
    assert statuses_by_build(stored) == expected
    assert scheduled_runs == 2, "web-base-nightly's two scheduled runs were found too"
    assert counters.changes == sum(len(statuses) for statuses in expected.values())
    assert (counters.sent, counters.dropped, counters.failed) == (counters.changes, 0, 0)
    # The push path did the work: every message matched a watched build and was
    # polled at once; with hourly polls, only those polls see a change this soon.
    assert matched == counters.sent > 0
    slow = [(arn, status, lag) for arn, status, lag in found if not 0 <= lag < 0.1]
    assert slow == [], "seen within 0.1 s (6 scenario seconds) of the change"
    assert len(set(ids)) == len(ids) == len(stored)


LOSSY = {"loss": 0.3, "duplicates": 0.2, "reorder": 0.2}
SAFETY = 300.0


def lossy_scenario() -> Scenario:
    """Six builds in three regions, changing at scattered moments over an hour of
    scenario time (time_scale 1: scenario seconds are clock seconds); every phase
    lasts longer than the safety interval, so even a build whose events are all lost
    is seen in every status."""
    builds = {  # build ARN's region/name/version/build -> (status, minutes) phases
        "us-east-1/web-base/1.4.0/7": "PENDING 6, CREATING 7, BUILDING 20, TESTING 9, "
        "DISTRIBUTING 8, INTEGRATING 6, AVAILABLE",
        "us-east-1/api-runtime/2.0.3/1": "PENDING 8, BUILDING 15.5, TESTING 11, "
        "DISTRIBUTING 7, AVAILABLE",
        "eu-west-1/windows-agent/3.1.0/12": "PENDING 7, BUILDING 25, TESTING 9.25, FAILED",
        "us-west-2/gpu-base/0.9.0/3": "PENDING 9, BUILDING 13, CANCELLED",
        "eu-west-1/db-base/5.2.0/2": "PENDING 6.5, BUILDING 18, TESTING 6, DISTRIBUTING 10, "
        "AVAILABLE",
        "us-east-1/cache/1.0.1/4": "PENDING 11, BUILDING 12, TESTING 8.5, DISTRIBUTING 6, "
        "AVAILABLE",
    }
    images = []
    for where, phases in builds.items():
        region, name, version, build = where.split("/")
        steps = [phase.split() for phase in phases.split(", ")]
        images.append(
            {
                "arn": f"arn:aws:imagebuilder:{region}:{ACCOUNT}:image/{name}/{version}/{build}",
                "timeline": timeline(
                    *((step[0], float(step[1]) * 60 if len(step) > 1 else None) for step in steps)
                ),
            }
        )
    return scenario(images, seed=5, events=LOSSY)


@pytest.mark.timeout(60)
async def test_with_lost_duplicated_and_reordered_events_every_transition_is_seen_once_in_time(
    tmp_path: Path, sqs_endpoint: str
) -> None:
    """30% of the events lost, 20% duplicated, 20% held back: the polls every
    `safety_interval` see what the lost ones would have said, no later than that after
    the change, and duplicates and late events poll a build that says nothing new."""
    plan = lossy_scenario()
    watch = watch_body(arns=[image.arn for image in plan.images], interval="1m")
    events = f'safety_interval = "{SAFETY:g}s"\n'
    async with playing(tmp_path, sqs_endpoint, plan, watch, events) as player:
        outcome = await played(player)
    stored, ids, counters, matched, found = outcome
    assert counters.dropped > 0, counters
    assert counters.duplicated > 0, counters
    assert counters.reordered > 0, counters
    assert statuses_by_build(stored) == {
        image.arn: [step.status for step in image.timeline] for image in plan.images
    }
    assert len({event.id for event in stored}) == len(stored), "no event stored twice"
    assert len(set(ids)) == len(ids) == len(stored), "none delivered twice"
    for arn, statuses in statuses_by_build(stored).items():
        assert all(a != b for a, b in itertools.pairwise(statuses)), arn
    late = [(arn, status, lag) for arn, status, lag in found if not 0 <= lag <= SAFETY]
    assert late == [], f"every change seen within safety_interval ({SAFETY:g}s)"
    # Both paths did their part: events brought most changes at once, the safety
    # polls the rest (lost, or held back behind a later event).
    by_event = sum(1 for *_, lag in found if lag < 1)
    by_safety_poll = sum(1 for *_, lag in found if lag >= 1)
    assert matched == counters.sent
    assert by_event > 0, Counter(round(lag) for *_, lag in found)
    assert by_safety_poll > 0, Counter(round(lag) for *_, lag in found)
