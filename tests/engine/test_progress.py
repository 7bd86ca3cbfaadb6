"""The running workflow step of a build in progress: looked up after a poll, within
a budget of the limiter's rate, carried on events as `progress`, and never able to
fail a watch. Against the simulator over loopback, on virtual time.

Model facts relied on (botocore's imagebuilder service-2.json):
WorkflowExecutionMetadata has type, status and totalStepCount ("Image Builder sets
this count before any steps run"); WorkflowStepMetadata has name, action, status.
That BUILDING runs the BUILD workflow and TESTING the TEST one is our reading (see
watcher/build_progress.py).
"""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from tests.engine.test_engine_simulator import watch
from tests.support import ACCOUNT, WEB_BASE, scenario, timeline, web_base_image
from watcher.build_progress import BuildProgress, progress_text
from watcher.model import ImageStatus, Transition
from watcher.simulator import Scenario
from watcher.testing import RecordingSink

LOOKUPS = ("ListWorkflowExecutions", "ListWorkflowStepExecutions")


class StepRecorder(RecordingSink):
    """Keeps the events, and every running step the engine says changed."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[tuple[str, BuildProgress | None]] = []

    def progressed(self, arn: str, progress: BuildProgress | None) -> None:
        self.steps.append((arn, progress))


def builds_then_tests() -> Scenario:
    """400s of BUILDING (four default steps, 100s each), 300s of TESTING (three)."""
    steps = [
        *timeline(("PENDING", 20), ("BUILDING", 400), ("TESTING", 300), ("DISTRIBUTING", 30)),
        {"status": "AVAILABLE"},
    ]
    return scenario([web_base_image(timeline=steps)])


def texts(recorder: StepRecorder) -> list[str]:
    return [progress_text(p) for _, p in recorder.steps if p is not None]


async def test_progress_names_the_running_step_through_the_build_and_test_workflows() -> None:
    recorder = StepRecorder()
    result, _, simulator = await watch(
        builds_then_tests(), [WEB_BASE], interval=30.0, sink=recorder, progress_share=0.2
    )
    assert result.watches[WEB_BASE].tracked.snapshot.status is ImageStatus.AVAILABLE
    # Each step once, in the order it ran: a step's number counts from 1 and its
    # workflow's total is totalStepCount. DISTRIBUTING lasts one poll: it shows one
    # of its two steps, which one depends on the poll's jitter.
    shown = texts(recorder)
    assert shown[:7] == [
        "build workflow, step 1/4 LaunchBuildInstance (LaunchInstance)",
        "build workflow, step 2/4 ApplyBuildComponents (ExecuteComponents)",
        "build workflow, step 3/4 CreateOutputAMI (CreateImage)",
        "build workflow, step 4/4 TerminateBuildInstance (TerminateInstance)",
        "test workflow, step 1/3 LaunchTestInstance (LaunchInstance)",
        "test workflow, step 2/3 ApplyTestComponents (ExecuteComponents)",
        "test workflow, step 3/3 TerminateTestInstance (TerminateInstance)",
    ]
    assert all(text.startswith("distribution workflow, step ") for text in shown[7:])
    assert len(shown) <= 8
    # At most one look-up per poll: each reads the steps once.
    requests = simulator.counters.requests
    assert requests["ListWorkflowStepExecutions"] <= requests["GetImage"]
    assert recorder.steps[0][1].workflow_name == "build-image"


async def test_events_carry_the_step_running_when_they_were_seen() -> None:
    recorder = StepRecorder()
    await watch(builds_then_tests(), [WEB_BASE], interval=30.0, sink=recorder, progress_share=0.2)
    by_status = {e.current.status: e for e in recorder.events}
    building, testing = by_status[ImageStatus.BUILDING], by_status[ImageStatus.TESTING]
    assert building.progress is not None
    assert testing.progress is not None
    assert (building.progress.workflow, building.progress.step) == ("BUILD", 1)
    assert (testing.progress.workflow, testing.progress.step_name) == ("TEST", "LaunchTestInstance")
    # Statuses that run no workflow carry none, and the envelope leaves it out.
    assert by_status[ImageStatus.PENDING].progress is None
    assert by_status[ImageStatus.AVAILABLE].progress is None
    assert "progress" not in by_status[ImageStatus.AVAILABLE].envelope()["data"]
    assert testing.envelope()["data"]["progress"]["step"] == 1


async def test_without_a_share_no_step_is_looked_up() -> None:
    recorder = StepRecorder()
    _, _, simulator = await watch(builds_then_tests(), [WEB_BASE], interval=30.0, sink=recorder)
    assert recorder.steps == []
    assert all(e.progress is None for e in recorder.events)
    assert [simulator.counters.requests[op] for op in LOOKUPS] == [0, 0]


def fleet(builds: int) -> Scenario:
    """`builds` builds that stay in BUILDING, then TESTING, for the whole test."""
    steps = timeline(("BUILDING", 300), ("TESTING", None))
    return scenario(
        [
            {
                "arn": f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/app-{n}/1.0.0/1",
                "timeline": steps,
            }
            for n in range(builds)
        ]
    )


async def test_step_look_ups_stay_within_their_share_of_the_calls() -> None:
    """50 builds in progress polled every 30s want 1.67 calls/s; max_tps 1.25 lets 1.25
    through (the pressure of 200 builds at 5 calls/s, at a quarter of the calls to
    serve, which keeps the test short; 100 builds at 2.5 gave the same margins). At a
    20% share, workflow look-ups are at most 20% of all the calls the simulator saw,
    and status polls get the rest."""
    plan = fleet(50)
    arns = [image.arn for image in plan.images]
    recorder = StepRecorder()
    minutes = 15
    rate = 1.25
    _, _, simulator = await watch(
        plan,
        arns,
        interval=30.0,
        max_tps=rate,
        concurrency=16,
        stop_when_ended=False,
        time_limit=minutes * 60.0,
        sink=recorder,
        progress_share=0.2,
    )
    requests = simulator.counters.requests
    lookups = sum(requests[op] for op in LOOKUPS)
    total = sum(requests.values())
    assert lookups <= 0.2 * total, (lookups, total, dict(requests))
    # The budget is used, not merely respected: close to its share.
    assert lookups >= 0.15 * total, (lookups, total, dict(requests))
    # Status polls get what the look-ups leave: at least 80% of the rate.
    assert requests["GetImage"] >= 0.8 * rate * minutes * 60, dict(requests)
    # Progress is shown less often, yet for nearly every build: after 10 minutes in
    # TESTING, nine in ten had shown a TEST step (a build whose step is known costs
    # the same turn as one not yet looked up, so none starves).
    testing = {arn for arn, p in recorder.steps if p.workflow == "TEST"}
    assert len(testing) >= 0.85 * len(arns), len(testing)


def with_faults(**faults: Any) -> Scenario:
    return Scenario.model_validate({**builds_then_tests().model_dump(), "faults": faults})


async def test_denied_look_ups_show_no_progress_with_one_warning_and_the_watch_goes_on() -> None:
    """A policy without imagebuilder:ListWorkflowExecutions: 403 on that call."""
    outage = {
        "code": "AccessDeniedException",
        "end": "10h",
        "operations": ["ListWorkflowExecutions"],
    }
    recorder = StepRecorder()
    with capture_logs() as logs:
        result, _, simulator = await watch(
            with_faults(outages=[outage]),
            [WEB_BASE],
            interval=30.0,
            sink=recorder,
            progress_share=0.2,
        )
    watched = result.watches[WEB_BASE]
    assert watched.error is None
    assert watched.tracked is not None
    assert watched.tracked.snapshot.status is ImageStatus.AVAILABLE
    assert [e.current.status.value for e in recorder.events] == [
        "PENDING",
        "BUILDING",
        "TESTING",
        "DISTRIBUTING",
        "AVAILABLE",
    ]
    assert all(e.progress is None for e in recorder.events)
    warnings = [line for line in logs if line["event"] == "image.progress_unavailable"]
    assert len(warnings) == 1, warnings
    assert warnings[0]["error"] == "AccessDenied"
    assert "imagebuilder:ListWorkflowExecutions" in warnings[0]["note"]
    # Refused once, then paused 10 minutes: not asked on every poll of the 12.5
    # minutes the build runs.
    assert simulator.counters.requests["ListWorkflowExecutions"] <= 2


async def test_throttled_look_ups_degrade_to_no_progress_not_to_a_failed_watch() -> None:
    """ListWorkflowExecutions throttled nearly always, at a realistic max_tps: one
    warning; status polls go on, every transition seen."""
    limits = {"ListWorkflowExecutions": {"rate": 0.001, "burst": 1}}
    recorder = StepRecorder()
    with capture_logs() as logs:
        result, _, simulator = await watch(
            with_faults(rate_limits=limits),
            [WEB_BASE],
            interval=30.0,
            max_tps=5.0,
            sink=recorder,
            progress_share=0.2,
        )
    watched = result.watches[WEB_BASE]
    assert watched.error is None
    assert watched.tracked is not None
    assert watched.tracked.snapshot.status is ImageStatus.AVAILABLE
    assert simulator.counters.injected["ListWorkflowExecutions", "rate_limit"] >= 2
    assert len(recorder.events) == 5
    warnings = [line for line in logs if line["event"] == "image.progress_unavailable"]
    assert len(warnings) == 1, warnings
    assert warnings[0]["error"] == "Throttled"
    # The one ListWorkflowExecutions the burst allowed found the BUILD workflow, whose
    # steps were then followed (one ListWorkflowStepExecutions each); the TEST and
    # DISTRIBUTION workflows were never found (each throttle pauses the look-ups).
    shown = [p for _, p in recorder.steps if p is not None]
    assert shown
    assert {p.workflow for p in shown} == {"BUILD"}


def failed_event(events: list[Transition]) -> Transition:
    (failed,) = [e for e in events if e.current.status is ImageStatus.FAILED]
    return failed


async def test_a_failure_event_carries_diagnostics_not_progress() -> None:
    steps = [*timeline(("BUILDING", 120), ("TESTING", 120)), {"status": "FAILED", "reason": "x"}]
    recorder = StepRecorder()
    await watch(
        scenario([web_base_image(timeline=steps)]),
        [WEB_BASE],
        interval=30.0,
        sink=recorder,
        progress_share=0.2,
    )
    failed = failed_event(recorder.events)
    assert failed.progress is None
    assert failed.diagnostics is not None
