"""The demo scenario shipped in config/ is the realistic mix the README promises."""

from __future__ import annotations

from pathlib import Path

from watcher.simulator import load_scenario
from watcher.simulator.catalog import Catalog

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


def test_demo_plays_out_in_under_a_minute() -> None:
    demo = load_scenario(DEMO)
    last_change = max(b.settled_by() for b in Catalog(demo.images))
    assert last_change / demo.time_scale < 60


def test_reference_scenario_documenting_every_key_loads() -> None:
    reference = load_scenario(DEMO.with_name("scenario-reference.toml"))
    documented = set(reference.model_fields_set)
    assert documented == set(type(reference).model_fields)
    assert set(reference.faults.model_fields_set) == set(type(reference.faults).model_fields)
    first = reference.images[0]
    assert set(first.model_fields_set) >= set(type(first).model_fields) - {"containers"}
