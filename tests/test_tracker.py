"""The pure tracker: a watched ARN's last state plus a new snapshot give the events to emit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.model import EVENT_TYPE, Ami, ImageSnapshot, ImageStatus, Outputs, Transition
from watcher.tracker import Tracked, observe

ACCOUNT = "123456789012"
VERSION_ARN = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/web-base/1.4.0"
BUILD_7 = f"{VERSION_ARN}/7"
CREATED = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
NO_OUTPUTS = Outputs()
OUTPUTS = Outputs(
    amis=(
        Ami(region="us-east-1", image="ami-0a1b2c3d4e5f60718"),
        Ami(region="eu-west-1", image="ami-0b2c3d4e5f6071829"),
    )
)


def snap(
    status: str,
    at: float = 0,
    *,
    build: int = 7,
    reason: str | None = None,
    failure_context: dict[str, Any] | None = None,
    tests_enabled: bool | None = None,
    outputs: Outputs = NO_OUTPUTS,
    created: datetime | None = CREATED,
) -> ImageSnapshot:
    """A snapshot of web-base 1.4.0, observed `at` seconds after it was created."""
    return ImageSnapshot(
        arn=f"{VERSION_ARN}/{build}",
        status=ImageStatus(status),
        reason=reason,
        failure_context=failure_context,
        name="web-base",
        version="1.4.0",
        build=build,
        type="AMI",
        platform="Linux",
        pipeline="web-base-nightly",
        created=created,
        tests_enabled=tests_enabled,
        outputs=outputs,
        observed_at=CREATED + timedelta(seconds=at),
    )


def fold(
    snapshots: Sequence[ImageSnapshot], watched: str = VERSION_ARN
) -> tuple[Tracked | None, list[Transition]]:
    """Every snapshot through `observe` in turn: the last state and all events."""
    state: Tracked | None = None
    events: list[Transition] = []
    for snapshot in snapshots:
        state, new = observe(watched, state, snapshot)
        events.extend(new)
    return state, events


def statuses(events: Sequence[Transition]) -> list[tuple[str | None, str]]:
    return [(e.previous.status if e.previous else None, e.current.status) for e in events]


def only(events: Sequence[Transition]) -> Transition:
    assert len(events) == 1, events
    return events[0]


# --- first sighting --------------------------------------------------------------------


def test_first_sighting_is_an_event_without_a_previous_status() -> None:
    _, events = observe(VERSION_ARN, None, snap("BUILDING", 90))
    event = only(events)
    assert event.previous is None
    assert event.current.status is ImageStatus.BUILDING


def test_first_sighting_is_sequence_one() -> None:
    _, events = observe(VERSION_ARN, None, snap("BUILDING"))
    assert only(events).sequence == 1


def test_first_sighting_skips_nothing() -> None:
    """Whatever came before we started watching is unknown, not skipped."""
    _, events = observe(VERSION_ARN, None, snap("AVAILABLE", outputs=OUTPUTS))
    assert only(events).skipped == ()


def test_first_sighting_has_no_time_in_a_previous_status() -> None:
    _, events = observe(VERSION_ARN, None, snap("BUILDING", 90))
    assert only(events).durations.in_previous_status_seconds is None


def test_first_sighting_starts_tracking_the_build() -> None:
    snapshot = snap("BUILDING", 90)
    state, _ = observe(VERSION_ARN, None, snapshot)
    assert state == Tracked(
        snapshot=snapshot, status_since=snapshot.observed_at, sequence=1, watched=VERSION_ARN
    )


def test_an_event_records_the_arn_as_watched_and_the_build_it_resolved_to() -> None:
    _, events = observe(VERSION_ARN, None, snap("BUILDING"))
    event = only(events)
    assert event.watched == VERSION_ARN
    assert event.image.arn == BUILD_7


def test_an_event_describes_the_image() -> None:
    _, events = observe(VERSION_ARN, None, snap("BUILDING"))
    assert only(events).image.model_dump() == {
        "arn": BUILD_7,
        "name": "web-base",
        "version": "1.4.0",
        "build": 7,
        "type": "AMI",
        "platform": "Linux",
        "region": "us-east-1",
        "account": ACCOUNT,
        "pipeline": "web-base-nightly",
    }


def test_an_event_carries_the_current_reason_and_failure_context() -> None:
    context = {"imageStatus": "BUILDING", "failedStep": "build", "workflowExecutionId": "wf-1"}
    _, events = fold([snap("BUILDING"), snap("FAILED", 60, reason="boom", failure_context=context)])
    current = events[-1].current
    assert (current.status, current.reason, current.failure_context) == (
        ImageStatus.FAILED,
        "boom",
        context,
    )


def test_previous_carries_status_and_reason_but_no_failure_context() -> None:
    context = {"imageStatus": "BUILDING"}
    _, events = fold([snap("FAILED", reason="boom", failure_context=context), snap("BUILDING", 60)])
    previous = events[-1].previous
    assert previous is not None
    assert (previous.status, previous.reason, previous.failure_context) == (
        ImageStatus.FAILED,
        "boom",
        None,
    )


# --- status changes and what they skipped ----------------------------------------------


def test_a_status_change_is_one_event_from_the_old_status_to_the_new() -> None:
    _, events = fold([snap("PENDING"), snap("BUILDING", 60)])
    assert statuses(events) == [(None, "PENDING"), ("PENDING", "BUILDING")]


def test_each_change_of_a_build_counts_up_its_sequence() -> None:
    _, events = fold([snap("PENDING"), snap("BUILDING", 60), snap("TESTING", 600)])
    assert [e.sequence for e in events] == [1, 2, 3]


def test_building_to_available_skipped_testing_and_distributing() -> None:
    _, events = fold(
        [snap("BUILDING"), snap("AVAILABLE", 900, tests_enabled=True, outputs=OUTPUTS)]
    )
    assert events[-1].skipped == (ImageStatus.TESTING, ImageStatus.DISTRIBUTING)


def test_pending_to_available_skipped_every_mandatory_stage_between() -> None:
    _, events = fold([snap("PENDING"), snap("AVAILABLE", 900, tests_enabled=True, outputs=OUTPUTS)])
    assert events[-1].skipped == (
        ImageStatus.BUILDING,
        ImageStatus.TESTING,
        ImageStatus.DISTRIBUTING,
    )


def test_with_tests_disabled_testing_is_not_skipped() -> None:
    _, events = fold(
        [
            snap("BUILDING", tests_enabled=False),
            snap("AVAILABLE", 900, tests_enabled=False, outputs=OUTPUTS),
        ]
    )
    assert events[-1].skipped == (ImageStatus.DISTRIBUTING,)


def test_when_the_build_does_not_say_whether_tests_run_testing_is_not_listed() -> None:
    """Not every build passes TESTING: only one that says its tests are enabled does."""
    _, events = fold([snap("BUILDING"), snap("AVAILABLE", 900, outputs=OUTPUTS)])
    assert events[-1].skipped == (ImageStatus.DISTRIBUTING,)


def test_a_failure_in_testing_lists_testing_even_when_tests_were_not_said_enabled() -> None:
    """The failure context says where it failed: that stage was certainly passed."""
    failed = snap("FAILED", 900, failure_context={"imageStatus": "TESTING"})
    _, events = fold([snap("BUILDING"), failed])
    assert events[-1].skipped == (ImageStatus.TESTING,)


def test_an_image_type_aws_adds_later_lists_nothing_as_skipped() -> None:
    """We do not know which stages a new kind of build passes, so we claim none."""
    before = snap("BUILDING").model_copy(update={"type": "ISO"})
    after = snap("AVAILABLE", 900, tests_enabled=True, outputs=OUTPUTS).model_copy(
        update={"type": "ISO"}
    )
    _, events = fold([before, after])
    assert events[-1].skipped == ()


def test_a_container_image_passes_the_same_stages_as_an_ami() -> None:
    before = snap("BUILDING").model_copy(update={"type": "DOCKER"})
    after = snap("AVAILABLE", 900, tests_enabled=True, outputs=OUTPUTS).model_copy(
        update={"type": "DOCKER"}
    )
    _, events = fold([before, after])
    assert events[-1].skipped == (ImageStatus.TESTING, ImageStatus.DISTRIBUTING)


def test_with_tests_enabled_testing_is_skipped() -> None:
    _, events = fold(
        [
            snap("BUILDING", tests_enabled=True),
            snap("AVAILABLE", 900, tests_enabled=True, outputs=OUTPUTS),
        ]
    )
    assert events[-1].skipped == (ImageStatus.TESTING, ImageStatus.DISTRIBUTING)


def test_creating_is_never_listed_as_skipped() -> None:
    _, events = fold([snap("PENDING"), snap("BUILDING", 120)])
    assert events[-1].skipped == ()


def test_integrating_is_never_listed_as_skipped() -> None:
    _, events = fold([snap("DISTRIBUTING"), snap("AVAILABLE", 120, outputs=OUTPUTS)])
    assert events[-1].skipped == ()


def test_leaving_an_optional_stage_skips_the_mandatory_ones_after_it() -> None:
    _, events = fold([snap("CREATING"), snap("DISTRIBUTING", 900, tests_enabled=True)])
    assert events[-1].skipped == (ImageStatus.BUILDING, ImageStatus.TESTING)


def test_a_failure_in_testing_after_building_skipped_testing() -> None:
    _, events = fold(
        [
            snap("BUILDING"),
            snap("FAILED", 900, reason="tests failed", failure_context={"imageStatus": "TESTING"}),
        ]
    )
    assert events[-1].skipped == (ImageStatus.TESTING,)


def test_a_failure_in_distribution_after_building_skipped_testing_and_distributing() -> None:
    _, events = fold(
        [
            snap("BUILDING"),
            snap(
                "FAILED", 900, tests_enabled=True, failure_context={"imageStatus": "DISTRIBUTING"}
            ),
        ]
    )
    assert events[-1].skipped == (ImageStatus.TESTING, ImageStatus.DISTRIBUTING)


def test_a_failure_in_the_status_last_seen_skipped_nothing() -> None:
    _, events = fold(
        [snap("BUILDING"), snap("FAILED", 900, failure_context={"imageStatus": "BUILDING"})]
    )
    assert events[-1].skipped == ()


def test_a_cancellation_in_testing_after_building_skipped_testing() -> None:
    _, events = fold(
        [snap("BUILDING"), snap("CANCELLED", 900, failure_context={"imageStatus": "TESTING"})]
    )
    assert events[-1].skipped == (ImageStatus.TESTING,)


def test_a_failure_without_a_failure_context_skipped_nothing_we_know_of() -> None:
    _, events = fold([snap("BUILDING"), snap("FAILED", 900, reason="boom")])
    assert events[-1].skipped == ()


def test_a_failure_in_an_unknown_stage_skipped_nothing_we_know_of() -> None:
    _, events = fold(
        [snap("BUILDING"), snap("FAILED", 900, failure_context={"imageStatus": "SCANNING"})]
    )
    assert events[-1].skipped == ()


def test_failed_to_distributing_after_a_retry_skips_nothing() -> None:
    _, events = fold(
        [
            snap("BUILDING"),
            snap("FAILED", 600, failure_context={"imageStatus": "BUILDING"}),
            snap("DISTRIBUTING", 1200),
        ]
    )
    event = events[-1]
    assert (event.previous and event.previous.status, event.current.status) == (
        ImageStatus.FAILED,
        ImageStatus.DISTRIBUTING,
    )
    assert event.skipped == ()


def test_a_retried_build_keeps_counting_its_sequence() -> None:
    _, events = fold([snap("BUILDING"), snap("FAILED", 600), snap("BUILDING", 1200)])
    assert [e.sequence for e in events] == [1, 2, 3]


def test_failing_twice_gives_two_events_with_different_ids() -> None:
    """FAILED -> BUILDING -> FAILED again: same statuses, a new transition."""
    _, events = fold(
        [
            snap("BUILDING"),
            snap("FAILED", 600),
            snap("BUILDING", 1200),
            snap("FAILED", 1800),
        ]
    )
    assert statuses(events)[1] == statuses(events)[3] == ("BUILDING", "FAILED")
    assert events[1].id != events[3].id


@pytest.mark.parametrize("status", ["DEPRECATED", "DISABLED", "DELETED"])
def test_lifecycle_moves_an_available_image_on_as_one_terminal_event(status: str) -> None:
    _, events = fold([snap("AVAILABLE", 900, outputs=OUTPUTS), snap(status, 86400)])
    event = only(events[1:])
    assert (event.previous and event.previous.status, event.current.status) == (
        ImageStatus.AVAILABLE,
        ImageStatus(status),
    )
    assert event.skipped == ()
    assert event.terminal


def test_going_backwards_skips_nothing() -> None:
    _, events = fold([snap("DISTRIBUTING"), snap("BUILDING", 60)])
    assert events[-1].skipped == ()


# --- unknown statuses ------------------------------------------------------------------


def test_an_unknown_status_is_carried_as_itself() -> None:
    _, events = fold([snap("BUILDING"), snap("QUEUED_FOR_SCAN", 600)])
    current = events[-1].current.status
    assert current == "QUEUED_FOR_SCAN"
    assert not current.known


def test_an_unknown_status_is_not_terminal() -> None:
    _, events = fold([snap("BUILDING"), snap("QUEUED_FOR_SCAN", 600)])
    assert not events[-1].terminal


def test_an_unknown_status_skips_nothing() -> None:
    _, events = fold([snap("BUILDING"), snap("QUEUED_FOR_SCAN", 600)])
    assert events[-1].skipped == ()


def test_leaving_an_unknown_status_is_an_event_that_skips_nothing() -> None:
    _, events = fold(
        [snap("BUILDING"), snap("QUEUED_FOR_SCAN", 600), snap("AVAILABLE", 900, outputs=OUTPUTS)]
    )
    assert statuses(events)[-1] == ("QUEUED_FOR_SCAN", "AVAILABLE")
    assert events[-1].skipped == ()


def test_an_unknown_status_seen_first_is_a_first_sighting() -> None:
    _, events = observe(VERSION_ARN, None, snap("QUEUED_FOR_SCAN"))
    assert statuses(events) == [(None, "QUEUED_FOR_SCAN")]


def test_repeating_an_unknown_status_is_no_event() -> None:
    state, _ = fold([snap("QUEUED_FOR_SCAN")])
    _, events = observe(VERSION_ARN, state, snap("QUEUED_FOR_SCAN", 60))
    assert events == []


def test_an_event_with_an_unknown_status_serialises_it_as_its_string() -> None:
    _, events = fold([snap("BUILDING"), snap("QUEUED_FOR_SCAN", 600)])
    data = json.loads(json.dumps(events[-1].envelope()))["data"]
    assert data["current"]["status"] == "QUEUED_FOR_SCAN"


# --- repeats and same-status updates ---------------------------------------------------


def test_a_repeated_identical_poll_is_no_event() -> None:
    state, _ = fold([snap("BUILDING")])
    _, events = observe(VERSION_ARN, state, snap("BUILDING", 60))
    assert events == []


def test_a_repeated_identical_poll_leaves_the_state_object_as_it_was() -> None:
    state, _ = fold([snap("BUILDING")])
    after, _ = observe(VERSION_ARN, state, snap("BUILDING", 60))
    assert after is state


def test_the_same_status_with_a_new_reason_is_no_event() -> None:
    state, _ = fold([snap("BUILDING", reason="step 1")])
    _, events = observe(VERSION_ARN, state, snap("BUILDING", 60, reason="step 2"))
    assert events == []


def test_the_same_status_with_a_new_reason_remembers_the_new_snapshot() -> None:
    state, _ = fold([snap("BUILDING", reason="step 1")])
    newer = snap("BUILDING", 60, reason="step 2")
    after, _ = observe(VERSION_ARN, state, newer)
    assert after.snapshot == newer


def test_the_same_status_with_a_new_reason_keeps_when_the_status_began() -> None:
    state, _ = fold([snap("BUILDING", reason="step 1")])
    assert state is not None
    after, _ = observe(VERSION_ARN, state, snap("BUILDING", 60, reason="step 2"))
    assert (after.status_since, after.sequence) == (state.status_since, state.sequence)


def test_the_next_event_reports_the_latest_reason_of_the_previous_status() -> None:
    _, events = fold(
        [
            snap("BUILDING", reason="step 1"),
            snap("BUILDING", 60, reason="step 2"),
            snap("TESTING", 600),
        ]
    )
    previous = events[-1].previous
    assert previous is not None
    assert previous.reason == "step 2"


def test_new_outputs_in_the_same_status_are_remembered_without_an_event() -> None:
    state, _ = fold([snap("AVAILABLE", 900)])
    later = snap("AVAILABLE", 960, outputs=OUTPUTS)
    after, events = observe(VERSION_ARN, state, later)
    assert events == []
    assert after.snapshot == later


# --- a new build behind a version ARN --------------------------------------------------


def test_a_new_build_behind_a_version_arn_is_a_first_sighting_of_that_build() -> None:
    _, events = fold([snap("AVAILABLE", 900, outputs=OUTPUTS), snap("PENDING", 86400, build=8)])
    event = events[-1]
    assert (event.previous, event.current.status, event.sequence) == (
        None,
        ImageStatus.PENDING,
        1,
    )
    assert event.image.arn == f"{VERSION_ARN}/8"
    assert event.image.build == 8


def test_a_new_build_counts_its_own_sequence_from_one() -> None:
    _, events = fold(
        [
            snap("PENDING"),
            snap("BUILDING", 60),
            snap("AVAILABLE", 900, outputs=OUTPUTS),
            snap("PENDING", 86400, build=8),
            snap("BUILDING", 86460, build=8),
        ]
    )
    assert [(e.image.build, e.sequence) for e in events] == [(7, 1), (7, 2), (7, 3), (8, 1), (8, 2)]


def test_a_new_build_in_the_same_status_is_still_an_event() -> None:
    _, events = fold([snap("BUILDING"), snap("BUILDING", 60, build=8)])
    assert [(e.image.build, e.previous) for e in events] == [(7, None), (8, None)]


def test_a_new_build_has_no_time_in_a_previous_status() -> None:
    _, events = fold([snap("BUILDING"), snap("PENDING", 600, build=8)])
    assert events[-1].durations.in_previous_status_seconds is None


def test_a_new_build_skips_nothing() -> None:
    _, events = fold([snap("PENDING"), snap("AVAILABLE", 600, build=8, outputs=OUTPUTS)])
    assert events[-1].skipped == ()


def test_a_new_build_s_events_have_their_own_ids() -> None:
    _, events = fold([snap("PENDING"), snap("PENDING", 600, build=8)])
    assert events[0].id != events[1].id


# --- durations -------------------------------------------------------------------------


def test_time_in_the_previous_status_runs_from_when_it_was_first_seen() -> None:
    _, events = fold(
        [
            snap("PENDING", 0),
            snap("BUILDING", 60),
            snap("BUILDING", 120),
            snap("BUILDING", 300, reason="still building"),
            snap("TESTING", 700),
        ]
    )
    assert events[-1].durations.in_previous_status_seconds == 640


def test_total_time_runs_from_when_the_build_was_created() -> None:
    _, events = fold([snap("PENDING", 30), snap("BUILDING", 90)])
    assert [e.durations.total_seconds for e in events] == [30, 90]


def test_total_time_is_unknown_without_a_creation_date() -> None:
    _, events = observe(VERSION_ARN, None, snap("BUILDING", 30, created=None))
    assert only(events).durations.total_seconds is None


def test_an_event_is_timestamped_when_the_change_was_observed() -> None:
    _, events = fold([snap("PENDING", 30), snap("BUILDING", 90)])
    assert events[-1].observed_at == CREATED + timedelta(seconds=90)


# --- outputs and terminal --------------------------------------------------------------


def test_an_available_event_carries_the_outputs() -> None:
    _, events = fold([snap("DISTRIBUTING"), snap("AVAILABLE", 600, outputs=OUTPUTS)])
    assert events[-1].outputs == OUTPUTS


@pytest.mark.parametrize(
    "status",
    ["PENDING", "BUILDING", "DISTRIBUTING", "INTEGRATING", "FAILED", "DEPRECATED", "SCANNING"],
)
def test_an_event_in_any_other_status_carries_no_outputs(status: str) -> None:
    """Even when the snapshot has some (an image deprecated after it was available)."""
    _, events = observe(VERSION_ARN, None, snap(status, outputs=OUTPUTS))
    assert only(events).outputs is None


@pytest.mark.parametrize(
    ("status", "terminal"),
    [
        ("PENDING", False),
        ("CREATING", False),
        ("BUILDING", False),
        ("TESTING", False),
        ("DISTRIBUTING", False),
        ("INTEGRATING", False),
        ("AVAILABLE", True),
        ("CANCELLED", True),
        ("FAILED", True),
        ("DEPRECATED", True),
        ("DELETED", True),
        ("DISABLED", True),
        ("QUEUED_FOR_SCAN", False),
    ],
)
def test_an_event_is_terminal_when_the_build_has_ended(status: str, terminal: bool) -> None:
    _, events = fold([snap("PENDING"), snap(status, 60)])
    assert events[-1].terminal is terminal


# --- ids -------------------------------------------------------------------------------


def test_the_same_transition_observed_later_has_the_same_id() -> None:
    """A retry or a restart recomputes the transition at another time: receivers dedupe."""
    _, first = fold([snap("BUILDING", 0), snap("TESTING", 600)])
    _, again = fold([snap("BUILDING", 5), snap("TESTING", 655, reason="later")])
    assert [e.id for e in first] == [e.id for e in again]


# --- the envelope ----------------------------------------------------------------------


def _available_event() -> Transition:
    _, events = fold(
        [
            snap("BUILDING", 60),
            snap("AVAILABLE", 900, outputs=OUTPUTS, reason="done", tests_enabled=True),
        ]
    )
    return events[-1]


def test_the_envelope_has_type_timestamp_and_data() -> None:
    envelope = _available_event().envelope()
    assert set(envelope) == {"type", "timestamp", "data"}
    assert envelope["type"] == EVENT_TYPE == "image.state_changed"


def test_the_envelope_timestamp_is_the_iso_8601_observation_time() -> None:
    envelope = _available_event().envelope()
    assert datetime.fromisoformat(envelope["timestamp"]) == CREATED + timedelta(seconds=900)


def test_the_envelope_data_is_the_event_in_json_form() -> None:
    event = _available_event()
    data = event.envelope()["data"]
    assert data["id"] == event.id
    assert data["sequence"] == 2
    assert data["watched"] == VERSION_ARN
    assert data["image"]["arn"] == BUILD_7
    assert data["previous"] == {"status": "BUILDING", "reason": None, "failureContext": None}
    assert data["current"]["status"] == "AVAILABLE"
    assert data["skipped"] == ["TESTING", "DISTRIBUTING"]
    assert data["terminal"] is True
    assert data["durations"] == {"in_previous_status_seconds": 840.0, "total_seconds": 900.0}
    assert [a["image"] for a in data["outputs"]["amis"]] == [
        "ami-0a1b2c3d4e5f60718",
        "ami-0b2c3d4e5f6071829",
    ]


def test_the_envelope_data_says_which_event_version_it_is() -> None:
    assert _available_event().envelope()["data"]["version"] == "1"


def test_the_envelope_of_a_first_sighting_has_a_null_previous() -> None:
    _, events = observe(VERSION_ARN, None, snap("BUILDING"))
    assert only(events).envelope()["data"]["previous"] is None


def test_the_envelope_survives_a_json_round_trip_unchanged() -> None:
    context = {"imageStatus": "TESTING", "componentFailure": {"errorMessage": "exit 1"}}
    _, events = fold(
        [snap("BUILDING"), snap("FAILED", 900, reason="tests", failure_context=context)]
    )
    envelope = events[-1].envelope()
    assert json.loads(json.dumps(envelope)) == envelope


def test_the_envelope_data_parses_back_into_the_event() -> None:
    event = _available_event()
    data = dict(event.envelope()["data"])
    data.pop("version")
    assert Transition.model_validate_json(json.dumps(data)) == event


# --- properties over random poll sequences ---------------------------------------------

KNOWN = [s.value for s in ImageStatus]
UNKNOWN = ["QUEUED_FOR_SCAN", "SCANNING", "ROLLING_BACK"]

# The documented rule, written out independently of the tracker: the lifecycle in
# order, of which only these stages are mandatory (CREATING and INTEGRATING are not).
LIFECYCLE = [
    "PENDING",
    "CREATING",
    "BUILDING",
    "TESTING",
    "DISTRIBUTING",
    "INTEGRATING",
    "AVAILABLE",
]
MANDATORY = {"PENDING", "BUILDING", "TESTING", "DISTRIBUTING", "AVAILABLE"}
TERMINAL = {"AVAILABLE", "CANCELLED", "FAILED", "DEPRECATED", "DELETED", "DISABLED"}


def expected_skipped(
    previous: str, current: str, failed_in: str | None, tests_enabled: bool | None
) -> list[str]:
    """Mandatory stages strictly between two lifecycle statuses; for a failure or a
    cancellation, up to and including the stage it happened in."""
    if previous not in LIFECYCLE:
        return []
    if current in LIFECYCLE:
        stop = LIFECYCLE.index(current)
    elif current in ("FAILED", "CANCELLED") and failed_in in LIFECYCLE:
        stop = LIFECYCLE.index(failed_in) + 1
    else:
        return []
    between = LIFECYCLE[LIFECYCLE.index(previous) + 1 : stop]
    # TESTING only when the build says its tests run, or a failure names it.
    return [
        s
        for s in between
        if s in MANDATORY
        and (
            s != "TESTING"
            or tests_enabled is True
            or (current in ("FAILED", "CANCELLED") and s == failed_in)
        )
    ]


@dataclass(frozen=True)
class Poll:
    status: str
    build: int
    at: int
    reason: str | None
    failed_in: str | None
    tests_enabled: bool | None
    with_outputs: bool

    def snapshot(self, shift: int = 0) -> ImageSnapshot:
        failing = self.status in ("FAILED", "CANCELLED")
        return snap(
            self.status,
            self.at + shift,
            build=self.build,
            reason=self.reason,
            failure_context=(
                {"imageStatus": self.failed_in} if failing and self.failed_in is not None else None
            ),
            tests_enabled=self.tests_enabled,
            outputs=OUTPUTS if self.with_outputs else NO_OUTPUTS,
            # Each build is created just before it is first seen.
            created=CREATED + timedelta(seconds=self.build * 10),
        )

    def key(self) -> tuple[object, ...]:
        """What makes two polls of one build look the same to the tracker."""
        context = self.snapshot().failure_context
        return (self.build, self.status, self.reason, self.with_outputs, str(context))


@st.composite
def poll_sequences(draw: st.DrawFn) -> list[Poll]:
    steps = draw(
        st.lists(
            st.tuples(
                st.sampled_from(KNOWN + UNKNOWN),
                st.integers(0, 11).map(lambda n: n == 0),  # now and then a new build
                st.integers(0, 3600),
                st.sampled_from([None, "step 1", "step 2"]),
                st.sampled_from([None, "", "SCANNING", *LIFECYCLE[:-1]]),
                st.sampled_from([None, True, False]),
                st.booleans(),
            ),
            min_size=1,
            max_size=40,
        )
    )
    polls: list[Poll] = []
    build, at = 1, 1000
    for status, new_build, wait, reason, failed_in, tests_enabled, with_outputs in steps:
        if new_build and polls:
            build += 1
        at += wait
        polls.append(Poll(status, build, at, reason, failed_in, tests_enabled, with_outputs))
    return polls


@dataclass(frozen=True)
class Expected:
    """One event as the documented rules predict it."""

    build: int
    sequence: int
    previous: str | None
    current: str
    skipped: list[str]
    in_previous: float | None


def expected_events(polls: Sequence[Poll]) -> list[Expected]:
    expected: list[Expected] = []
    last: Poll | None = None
    since = 0
    for poll in polls:
        if last is None or poll.build != last.build:
            expected.append(Expected(poll.build, 1, None, poll.status, [], None))
            since = poll.at
        elif poll.status != last.status:
            skipped = expected_skipped(last.status, poll.status, poll.failed_in, poll.tests_enabled)
            sequence = expected[-1].sequence + 1
            expected.append(
                Expected(poll.build, sequence, last.status, poll.status, skipped, poll.at - since)
            )
            since = poll.at
        last = poll
    return expected


def run(polls: Sequence[Poll], shift: int = 0) -> list[Transition]:
    return fold([p.snapshot(shift) for p in polls])[1]


PROPERTY = settings(max_examples=300, deadline=None)


# The properties share their generated runs: drawing a run costs more than checking
# it (about three quarters of each example's time, measured), so one test checks
# every property below on the same 300 runs, each with its own assertion and message.


@PROPERTY
@given(poll_sequences(), st.integers(1, 10**6))
def test_every_run_of_polls_follows_the_tracker_rules(polls: list[Poll], shift: int) -> None:
    """Events: one per first sighting, per new build and per status change, none else;
    `skipped` by the documented rule; sequence numbers 1, 2, 3 per build; the time in
    the previous status measured from its first poll. Ids are distinct within a run;
    replaying a run gives the same events, and replaying it later the same ids;
    terminal and outputs follow the current status; every envelope is JSON. A poll
    that looks the same as the last keeps the state object and makes no event."""
    events = run(polls)
    expected = expected_events(polls)
    assert [
        (e.image.build, e.previous.status if e.previous else None, e.current.status) for e in events
    ] == [(x.build, x.previous, x.current) for x in expected], "events exactly for changes"
    assert [[s.value for s in e.skipped] for e in events] == [x.skipped for x in expected], (
        "skipped follows the documented rule"
    )
    assert [(e.image.build, e.sequence) for e in events] == [
        (x.build, x.sequence) for x in expected
    ], "sequence numbers count one, two, three per build"
    assert [e.durations.in_previous_status_seconds for e in events] == [
        x.in_previous for x in expected
    ], "time in the previous status is measured from its first poll"

    ids = [e.id for e in events]
    assert len(set(ids)) == len(ids), "ids are distinct within a run"
    assert run(polls) == events, "replaying a run gives the same events"
    assert [e.id for e in run(polls, shift)] == ids, "replaying a run later gives the same ids"
    for event in events:
        status = event.current.status
        assert event.terminal is (status in TERMINAL), event
        if status == "AVAILABLE":
            assert event.outputs is not None, event
        else:
            assert event.outputs is None, event
        envelope = event.envelope()
        assert json.loads(json.dumps(envelope)) == envelope, "every event envelope is JSON"

    state: Tracked | None = None
    last: Poll | None = None
    for poll in polls:
        after, made = observe(VERSION_ARN, state, poll.snapshot())
        if last is not None and poll.key() == last.key():
            assert after is state, "a poll that looks the same keeps the state object"
            assert made == [], "a poll that looks the same makes no event"
        else:
            assert after.snapshot == poll.snapshot(), "a poll that looks new becomes the state"
        state, last = after, poll


def test_one_build_watched_through_two_arns_gives_two_distinct_ids() -> None:
    """The store keeps one row per id, so the version-ARN and build-ARN watches must differ."""
    _, by_version = fold([snap("BUILDING")], watched=VERSION_ARN)
    _, by_build = fold([snap("BUILDING")], watched=BUILD_7)
    assert only(by_version).id != only(by_build).id


def test_a_new_failure_context_on_the_same_status_is_remembered_without_an_event() -> None:
    state, _ = fold([snap("FAILED", failure_context={"failedStep": "Build"})])
    assert state is not None
    later = snap("FAILED", 60, failure_context={"failedStep": "Test"})
    new_state, events = observe(VERSION_ARN, state, later)
    assert events == []
    assert new_state.snapshot.failure_context == {"failedStep": "Test"}
