"""Pure transition logic: the last tracked state of a watched ARN plus a new
snapshot give the new state and the events to emit.

Never does I/O and never reads a clock: every time it uses is in the snapshots.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from watcher.model import (
    PROGRESS,
    Arn,
    Durations,
    ImageInfo,
    ImageSnapshot,
    ImageStatus,
    StatusInfo,
    Transition,
    _Value,
    always_passed,
)

_ID_NAMESPACE = uuid.UUID("6f0f8a4e-2b8c-4d8e-9a53-1b7c2f3e9d10")

# Where each in-progress status sits on the way to AVAILABLE; the optional
# stages sit between the mandatory ones so they never count as skipped.
_POSITION: dict[ImageStatus, float] = {
    ImageStatus.PENDING: 0,
    ImageStatus.CREATING: 0.5,
    ImageStatus.BUILDING: 1,
    ImageStatus.TESTING: 2,
    ImageStatus.DISTRIBUTING: 3,
    ImageStatus.INTEGRATING: 3.5,
    ImageStatus.AVAILABLE: 4,
}


class Tracked(_Value):
    """What the watcher remembers of one watched ARN between polls."""

    snapshot: ImageSnapshot
    status_since: datetime
    """When the current status was first seen."""
    sequence: int
    """How many transitions the current build has had (first sighting is 1)."""
    watched: str | None = None
    """The ARN its events name as `watched`: as configured, or the version or
    pipeline ARN that discovery found the build through. Kept so that a restart
    recomputes the same event ids; None in state files written before it existed."""


def observe(
    watched: str, tracked: Tracked | None, snapshot: ImageSnapshot
) -> tuple[Tracked, list[Transition]]:
    """The new tracked state, and the transitions `snapshot` reveals (none when the
    status did not change)."""
    if tracked is None or tracked.snapshot.arn != snapshot.arn:
        # First sighting, or a new build number behind a version ARN.
        state = Tracked(
            snapshot=snapshot, status_since=snapshot.observed_at, sequence=1, watched=watched
        )
        return state, [_transition(watched, None, state)]
    if tracked.snapshot.status == snapshot.status:
        if tracked.snapshot.same_state(snapshot):
            return tracked, []
        # Same status, new reason or outputs: remembered, not an event.
        return tracked.model_copy(update={"snapshot": snapshot}), []
    state = Tracked(
        snapshot=snapshot,
        status_since=snapshot.observed_at,
        sequence=tracked.sequence + 1,
        watched=watched,
    )
    return state, [_transition(watched, tracked, state)]


def skipped_between(previous: ImageStatus, current: ImageSnapshot) -> tuple[ImageStatus, ...]:
    """The stages a build must have passed between two polls.

    BUILDING -> AVAILABLE skipped TESTING (when its tests are enabled) and
    DISTRIBUTING. A failure skipped the stages up to and including the one it
    failed in (failureContext.imageStatus).
    Retries and lifecycle changes (FAILED -> BUILDING, AVAILABLE -> DEPRECATED)
    skip nothing we could know of.
    """
    start = _POSITION.get(previous)
    if start is None:
        return ()
    end = _POSITION.get(current.status)
    inclusive = False
    if end is None and current.status in (ImageStatus.FAILED, ImageStatus.CANCELLED):
        failed_in = (current.failure_context or {}).get("imageStatus")
        end = (
            _POSITION.get(ImageStatus(failed_in))
            if isinstance(failed_in, str) and failed_in
            else None
        )
        inclusive = True
    if end is None or end <= start:
        return ()
    # Only what every build of its kind passes (model.always_passed); the stage a
    # failure names was certainly passed, whatever the build's settings.
    passed = always_passed(current.type, current.tests_enabled)
    return tuple(
        s
        for s in PROGRESS
        if (start < _POSITION[s] < end and s in passed) or (inclusive and _POSITION[s] == end)
    )


def transition_id(
    watched: str, build_arn: str, sequence: int, previous: ImageStatus | None, current: ImageStatus
) -> str:
    """Stable across recomputation: the same watched ARN, build, count and statuses
    give the same id. `watched` is in it so that one build watched through both
    its version ARN and its build ARN yields two distinct events."""
    key = f"{watched}#{build_arn}#{sequence}#{previous.value if previous else ''}>{current.value}"
    return str(uuid.uuid5(_ID_NAMESPACE, key))


def _transition(watched: str, before: Tracked | None, after: Tracked) -> Transition:
    snapshot = after.snapshot
    arn = Arn.parse(snapshot.arn)
    previous = None
    in_previous = None
    skipped: tuple[ImageStatus, ...] = ()
    if before is not None:
        old = before.snapshot
        previous = StatusInfo(status=old.status, reason=old.reason)
        in_previous = (snapshot.observed_at - before.status_since).total_seconds()
        skipped = skipped_between(old.status, snapshot)
    total = (snapshot.observed_at - snapshot.created).total_seconds() if snapshot.created else None
    return Transition(
        id=transition_id(
            watched,
            snapshot.arn,
            after.sequence,
            previous.status if previous else None,
            snapshot.status,
        ),
        sequence=after.sequence,
        watched=watched,
        image=ImageInfo(
            arn=snapshot.arn,
            name=snapshot.name,
            version=snapshot.version,
            build=snapshot.build,
            type=snapshot.type,
            platform=snapshot.platform,
            region=arn.region,
            account=arn.account,
            pipeline=snapshot.pipeline,
        ),
        previous=previous,
        current=StatusInfo(
            status=snapshot.status, reason=snapshot.reason, failure_context=snapshot.failure_context
        ),
        skipped=skipped,
        terminal=snapshot.status.terminal,
        durations=Durations(in_previous_status_seconds=in_previous, total_seconds=total),
        outputs=snapshot.outputs if snapshot.status.succeeded else None,
        observed_at=snapshot.observed_at,
    )
