"""The engine against the simulator over loopback, on virtual time shared by both."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.support import ACCOUNT, aws_session, scenario, timeline
from watcher.aws import AwsImageSource
from watcher.engine import Engine, Recovery, RunResult, Schedule
from watcher.listing import newest_build
from watcher.model import ImageStatus
from watcher.ratelimit import CubicLimiter
from watcher.retry import RetryPolicy
from watcher.simulator import Scenario, Simulator, load_scenario
from watcher.store import MemoryStore
from watcher.testing import RecordingSink, VirtualClock

DEMO = Path(__file__).parents[2] / "config" / "demo-scenario.toml"


async def watch(
    plan: Scenario,
    arns: Sequence[str],
    *,
    interval: float = 0.2,
    max_tps: float = 100.0,
    concurrency: int = 8,
    time_limit: float | None = None,
    retry: RetryPolicy | None = None,
    stop_when_ended: bool = True,
    not_found_grace: float = 120.0,
    resolve_versions: bool = False,
    sink: RecordingSink | None = None,
    **engine_options: Any,
) -> tuple[RunResult, RecordingSink, Simulator]:
    """Run an engine on `plan`; `engine_options` are passed to the Engine as they are."""
    clock = VirtualClock()
    simulator = Simulator(plan, clock=clock)
    sink = sink or RecordingSink()
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        async with (
            simulator as url,
            AwsImageSource(
                clock=clock, endpoint_url=url, concurrency=concurrency, session=aws_session()
            ) as source,
        ):
            engine = Engine(
                source=source,
                store=MemoryStore(),
                listeners=[sink],
                clock=clock,
                limiter=CubicLimiter(max_tps, clock),
                schedule=Schedule(interval_for=lambda _: interval, not_found_grace=not_found_grace),
                retry=retry or RetryPolicy(attempts=8, base=0.05, cap=1.0),
                concurrency=concurrency,
                rng=random.Random(7),
                resolver=(
                    (lambda arn: newest_build(source, engine.call, arn))
                    if resolve_versions
                    else None
                ),
                **engine_options,
            )
            await source.warm(arns)
            result = await engine.run(arns, stop_when_ended=stop_when_ended, time_limit=time_limit)
        group.cancel_scope.cancel()
    return result, sink, simulator


def expected_statuses(plan: Scenario) -> dict[str, list[str]]:
    return {i.arn: [s.status for s in i.timeline] for i in plan.images}


def seen_statuses(sink: RecordingSink) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = defaultdict(list)
    for event in sink.events:
        seen[event.image.arn].append(event.current.status.value)
    return dict(seen)


def without_faults(plan: Scenario) -> Scenario:
    return Scenario.model_validate({**plan.model_dump(), "faults": {}})


async def test_every_transition_of_the_demo_is_emitted_once_in_order() -> None:
    """Polled every 0.5 s: the demo's shortest status lasts a scenario minute, a second
    of the clock's at its time_scale of 60, and polls at most 0.55 s apart (10% jitter)
    see every status whatever the jitter drew."""
    demo = without_faults(load_scenario(DEMO))
    assert demo.time_scale == 60
    assert min(s.duration for i in demo.images for s in i.timeline if s.duration) >= 60
    result, sink, _ = await watch(demo, [i.arn for i in demo.images], interval=0.5)
    assert seen_statuses(sink) == expected_statuses(demo)
    assert len({e.id for e in sink.events}) == len(sink.events)
    assert all(w.ended for w in result.watches.values())
    available = [e for e in sink.events if e.current.status is ImageStatus.AVAILABLE]
    web_base = next(e for e in available if e.image.name == "web-base")
    assert {a.region for a in web_base.outputs.amis} == {"us-east-1", "eu-west-1", "ap-southeast-2"}
    api = next(e for e in available if e.image.name == "api-runtime")
    assert api.outputs.containers[0].image_uris
    failed = next(e for e in sink.events if e.current.status is ImageStatus.FAILED)
    assert failed.current.reason
    assert failed.current.failure_context["failedStep"] == "RunImageTests"


async def test_every_transition_survives_thirty_percent_of_calls_failing() -> None:
    demo = load_scenario(DEMO)
    faults = {
        "errors": {
            "CallRateLimitExceededException": 0.08,
            "ServiceUnavailableException": 0.06,
            "ServiceException": 0.06,
        },
        "dropped_connections": 0.05,
        "malformed_bodies": 0.05,
    }
    faulty = Scenario.model_validate({**demo.model_dump(), "faults": faults, "seed": 11})
    result, sink, simulator = await watch(faulty, [i.arn for i in faulty.images])
    assert seen_statuses(sink) == expected_statuses(faulty)
    counters = simulator.counters
    assert counters.injected_total() / counters.requests["GetImage"] > 0.2
    assert all(w.error is None for w in result.watches.values())


async def test_a_final_error_is_never_retried_and_the_others_go_on() -> None:
    demo = without_faults(load_scenario(DEMO))
    missing = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/nothing-here/1.0.0/1"
    result, sink, simulator = await watch(demo, [missing, demo.images[0].arn], not_found_grace=0)
    assert simulator.counters.responses["GetImage", "ResourceNotFoundException"] == 1
    assert type(result.watches[missing].error).__name__ == "NotFound"
    assert seen_statuses(sink)[demo.images[0].arn][-1] == "AVAILABLE"


ONE_SHOT_OR_DAEMON = pytest.mark.parametrize(
    "daemon",
    [pytest.param(False, id="one-shot"), pytest.param(True, id="daemon")],
)
"""The one-shot run stops when every build ended; the daemon never stops on its own,
and parks on its `Recovery` (a NotFound is not among the errors that heals)."""


def mode(daemon: bool, seconds: float) -> dict[str, Any]:
    """The `watch` options of a one-shot run, or of a daemon run for `seconds`."""
    if not daemon:
        return {}
    return {"stop_when_ended": False, "time_limit": seconds, "recovery": Recovery()}


@ONE_SHOT_OR_DAEMON
async def test_not_found_within_the_grace_is_retried_until_the_build_appears(daemon: bool) -> None:
    """Right after StartImagePipelineExecution the new build ARN can answer 404."""
    arn = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/web-base/1.4.0/7"
    late = {"arn": arn, "start": 5, "timeline": timeline(("BUILDING", 5), ("AVAILABLE", None))}
    result, sink, simulator = await watch(
        scenario([late]), [arn], interval=1.0, not_found_grace=30, **mode(daemon, 30)
    )
    # Polled every 1 s jittered by up to 10% (seeded): six polls come before the build
    # does, at 5 s, and each 404 is retried.
    assert simulator.counters.responses["GetImage", "ResourceNotFoundException"] == 6
    assert result.watches[arn].error is None, "the 404 was retried, not parked"
    assert [e.current.status.value for e in sink.events] == ["BUILDING", "AVAILABLE"]


@ONE_SHOT_OR_DAEMON
async def test_not_found_past_the_grace_parks_the_arn(daemon: bool) -> None:
    missing = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/nothing-here/1.0.0/1"
    result, _, simulator = await watch(
        scenario([]),
        [missing],
        interval=1.0,
        not_found_grace=5,
        **({"time_limit": 60} | mode(daemon, 60)),
    )
    assert type(result.watches[missing].error).__name__ == "NotFound"
    if not daemon:
        assert not result.timed_out, "parked, so the run ended long before its time limit"
    not_found = simulator.counters.responses["GetImage", "ResourceNotFoundException"]
    # Polled every 1 s jittered by up to 10% (seeded): six answers inside the 5 s
    # grace, retried, and the seventh, the first past it, parks the ARN. Exact, since
    # virtual time stands still while a call is on the wire. The daemon, on for 60 s,
    # never asks again.
    assert not_found == 7


async def test_a_one_shot_version_arn_follows_its_newest_build_not_its_newest_available() -> None:
    """GetImage on a version ARN answers only its newest AVAILABLE build (botocore's model),
    so the engine lists the version and polls the newest build itself."""
    version = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/web-base/1.4.0"
    images = [
        {"arn": f"{version}/1", "timeline": timeline(("AVAILABLE", None))},
        {"arn": f"{version}/2", "timeline": timeline(("BUILDING", 10), ("FAILED", None))},
    ]
    result, sink, _ = await watch(scenario(images), [version], interval=1.0, resolve_versions=True)
    assert result.watches[version].build_arn == f"{version}/2"
    assert [(e.image.build, e.current.status.value) for e in sink.events] == [
        (2, "BUILDING"),
        (2, "FAILED"),
    ]
    assert {e.watched for e in sink.events} == {version}


async def test_a_one_shot_version_arn_without_a_build_keeps_looking_until_one_appears() -> None:
    version = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/web-base/1.4.0"
    later = {"arn": f"{version}/3", "start": 20, "timeline": timeline(("AVAILABLE", None))}
    result, sink, simulator = await watch(
        scenario([later]), [version], interval=2.0, resolve_versions=True
    )
    assert result.watches[version].build_arn == f"{version}/3"
    assert [e.current.status.value for e in sink.events] == ["AVAILABLE"]
    assert simulator.counters.requests["ListImageBuildVersions"] >= 5


async def test_unknown_status_shows_in_events_as_itself() -> None:
    arn = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/web-base/1.4.0/7"
    steps = [
        {"status": "BUILDING", "duration": 5},
        {"status": "QUEUED_FOR_SCAN", "allow_unknown_status": True, "duration": 5},
        {"status": "AVAILABLE"},
    ]
    _, sink, _ = await watch(scenario([{"arn": arn, "timeline": steps}]), [arn], interval=1.0)
    assert [e.current.status.value for e in sink.events] == [
        "BUILDING",
        "QUEUED_FOR_SCAN",
        "AVAILABLE",
    ]
    assert not sink.events[1].terminal


@pytest.mark.timeout(120)
async def test_shared_limiter_keeps_throttling_low_and_goodput_high() -> None:
    """200 ARNs due at once against a simulator limited to R requests/s.

    Deterministic (virtual time, seeded jitter): over 30 s, 2.1% of the calls are
    throttled and the goodput is 20.6/s; over 60 s, 1.9% and 20.2/s. The start, when
    the limiter has yet to find R, weighs more in the shorter run, yet the margins to
    the bounds stay as wide."""
    rate = 20
    arns = [f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/img-{n}/1.0.0/1" for n in range(200)]
    images = [{"arn": a, "timeline": timeline(("BUILDING", None))} for a in arns]
    plan = scenario(images, faults={"rate_limits": {"GetImage": {"rate": rate, "burst": rate}}})
    seconds = 30
    result, _, simulator = await watch(
        plan, arns, interval=5.0, max_tps=50, concurrency=16, time_limit=seconds
    )
    counters = simulator.counters
    calls = counters.requests["GetImage"]
    throttled = counters.outcome("CallRateLimitExceededException")
    ok = counters.outcome("ok")
    print(
        f"calls={calls} ok={ok} throttled={throttled} ({throttled / calls:.1%}) "
        f"goodput={ok / seconds:.1f}/s of R={rate}"
    )
    assert result.timed_out
    assert throttled / calls < 0.05
    assert ok / seconds >= 0.8 * rate
