"""The demo scenario shipped in config/ is the realistic mix the README promises."""

from __future__ import annotations

from pathlib import Path

from watcher.simulator import Simulator, load_scenario
from watcher.testing import FakeClock

DEMO = Path(__file__).parents[2] / "config" / "demo-scenario.toml"


def test_demo_has_the_promised_mix_of_outcomes() -> None:
    demo = load_scenario(DEMO)
    finals = {(i.type, i.timeline[-1].status) for i in demo.images}
    assert finals >= {
        ("AMI", "AVAILABLE"),
        ("DOCKER", "AVAILABLE"),
        ("AMI", "FAILED"),
        ("AMI", "CANCELLED"),
    }
    ami = next(i for i in demo.images if i.type == "AMI" and i.timeline[-1].status == "AVAILABLE")
    assert len({a.region for a in ami.amis}) == 3
    docker = next(i for i in demo.images if i.type == "DOCKER")
    assert docker.containers
    assert docker.containers[0].image_uris
    failed = next(i for i in demo.images if i.timeline[-1].status == "FAILED")
    assert failed.timeline[-2].status == "TESTING"
    assert failed.timeline[-1].reason
    assert failed.timeline[-1].failure_context


def test_every_demo_build_belongs_to_a_declared_pipeline() -> None:
    demo = load_scenario(DEMO)
    assert {i.pipeline for i in demo.images} == {p.pipeline_name for p in demo.pipelines}


def test_one_demo_pipeline_runs_on_a_schedule_and_its_runs_end_available() -> None:
    demo = load_scenario(DEMO)
    (scheduled,) = [p for p in demo.pipelines if p.schedule is not None]
    assert scheduled.schedule is not None
    assert scheduled.schedule.until is not None
    assert scheduled.timeline[-1].status == "AVAILABLE"


def test_no_demo_step_but_a_failed_one_has_a_failure_context() -> None:
    demo = load_scenario(DEMO)
    steps = [s for spec in (*demo.images, *demo.pipelines) for s in spec.timeline]
    assert all(s.failure_context is None for s in steps if s.status != "FAILED")


async def test_demo_plays_out_in_under_a_minute_scheduled_runs_included() -> None:
    demo = load_scenario(DEMO)
    clock = FakeClock()
    simulator = Simulator(demo, clock=clock)
    async with simulator:
        settled = simulator.settled_at()
        clock.advance(settled)
        t = simulator.scenario_time()
        runs = [b for b in simulator.catalog if b.build_type == "SCHEDULED"]
    assert settled < 60
    assert [b.status_at(t) for b in runs] == ["AVAILABLE", "AVAILABLE"]


def test_reference_scenario_documenting_every_key_loads() -> None:
    reference = load_scenario(DEMO.with_name("scenario-reference.toml"))
    documented = set(reference.model_fields_set)
    assert documented == set(type(reference).model_fields)
    assert set(reference.faults.model_fields_set) == set(type(reference.faults).model_fields)
    first = reference.images[0]
    assert set(first.model_fields_set) >= set(type(first).model_fields) - {"containers"}
    pipeline = reference.pipelines[0]
    assert set(pipeline.model_fields_set) == set(type(pipeline).model_fields)
    assert pipeline.schedule is not None
    assert set(pipeline.schedule.model_fields_set) == set(type(pipeline.schedule).model_fields)
