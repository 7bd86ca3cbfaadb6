"""`Simulator.settled_at()` with pipeline schedules: finite schedules count, an
endless one raises NeverSettles."""

from __future__ import annotations

import pytest

from tests.simulator.helpers import AVAILABLE_NOW, FAILING, NIGHTLY, images_of, nightly, world
from watcher.simulator import Simulator
from watcher.simulator.server import NeverSettles
from watcher.testing import FakeClock

FINISHED = images_of(7, timeline=AVAILABLE_NOW)


async def test_settled_at_waits_for_the_last_run_of_a_schedule_with_an_end(
    clock: FakeClock,
) -> None:
    """Runs at 10m and 30m (until 30m), each AVAILABLE 300s after it starts."""
    plan = world(FINISHED, [nightly(schedule={"every": "20m", "first": "10m", "until": "30m"})])
    simulator = Simulator(plan, clock=clock)
    async with simulator:
        assert simulator.settled_at() == 1800 + 300


async def test_settled_at_is_read_on_the_simulator_s_clock(clock: FakeClock) -> None:
    plan = world(
        FINISHED,
        [nightly(schedule={"every": "20m", "first": "10m", "until": "30m"})],
        time_scale=60,
    )
    clock.advance(5)
    simulator = Simulator(plan, clock=clock)
    async with simulator:
        assert simulator.settled_at() == 5 + 2100 / 60


async def test_settled_at_of_an_endless_schedule_raises_naming_the_pipeline(
    clock: FakeClock,
) -> None:
    simulator = Simulator(world(FINISHED, [nightly(schedule={"every": "1h"})]), clock=clock)
    async with simulator:
        with pytest.raises(NeverSettles, match=r"pipeline 'web-base-nightly' .* never settles"):
            simulator.settled_at()


async def test_an_endless_schedule_of_a_disabled_pipeline_settles(clock: FakeClock) -> None:
    plan = world(FINISHED, [nightly(schedule={"every": "1h"}, status="DISABLED")])
    simulator = Simulator(plan, clock=clock)
    async with simulator:
        assert simulator.settled_at() == 0


async def test_an_endless_schedule_whose_runs_fail_settles_once_it_disables_itself(
    clock: FakeClock,
) -> None:
    """Runs at 1h and 2h fail 120s in; the second disables the pipeline."""
    pipeline = nightly(schedule={"every": "1h"}, timeline=FAILING, auto_disable_after=2)
    simulator = Simulator(world(FINISHED, [pipeline]), clock=clock)
    async with simulator:
        assert simulator.settled_at() == 7200 + 120


async def test_settled_at_counts_runs_already_started(clock: FakeClock) -> None:
    simulator = Simulator(world(FINISHED, [nightly()]), clock=clock)
    async with simulator:
        clock.advance(1000)
        simulator.start_pipeline(NIGHTLY)
        assert simulator.settled_at() == 1000 + 300


async def test_a_schedule_that_has_run_its_course_does_not_move_settled_at(
    clock: FakeClock,
) -> None:
    plan = world(FINISHED, [nightly(schedule={"every": "10m", "first": 0, "until": "10m"})])
    simulator = Simulator(plan, clock=clock)
    async with simulator:
        before = simulator.settled_at()
        clock.advance(3600)
        after = simulator.settled_at()
    assert before == after == 600 + 300


async def test_entered_at_reads_a_scheduled_run_once_it_has_started(clock: FakeClock) -> None:
    plan = world(FINISHED, [nightly(schedule={"every": "10m", "first": "10m"})])
    simulator = Simulator(plan, clock=clock)
    async with simulator:
        clock.advance(600)
        simulator.scenario_time()
        (run,) = [b for b in simulator.catalog if b.build_type == "SCHEDULED"]
        assert simulator.entered_at(run.arn, "AVAILABLE") == 600 + 300
