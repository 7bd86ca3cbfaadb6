"""The `Store` protocol, and the outbox rows it keeps.

Committing a poll result writes the tracked state, its events and one delivery
row per sink that wants each event, in one transaction. A delivery row leaves the
outbox only when its sink acknowledged it, or as a dead letter.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from watcher.model import Transition
from watcher.tracker import Tracked


@dataclass(frozen=True)
class Delivery:
    """One event still to be delivered to one sink."""

    seq: int
    sink: str
    event: Transition
    attempts: int
    next_attempt_at: float
    """Epoch seconds; wall time, so a backoff survives a restart."""
    created_at: float
    last_error: str | None = None


@dataclass(frozen=True)
class DeadLetter:
    """A delivery given up on: a permanent refusal, or too old. Replayable."""

    seq: int
    sink: str
    event: Transition
    attempts: int
    created_at: float
    died_at: float
    reason: str


@dataclass(frozen=True)
class OutboxStats:
    """One sink's share of the outbox, for metrics."""

    pending: int = 0
    oldest_created_at: float | None = None
    dead_letters: int = 0


@dataclass(frozen=True)
class Pruned:
    """What `Store.prune` forgot."""

    events: int = 0
    builds: int = 0
    """Tracked states of ended builds forgotten."""


def ended_build(tracked: str) -> bool:
    """Whether a stored tracked state (JSON) is of a build that ended; a row that
    cannot be read counts as not ended, so that pruning keeps it."""
    try:
        return Tracked.model_validate_json(tracked).snapshot.status.terminal
    except ValueError:  # pydantic's ValidationError
        return False


class Store(Protocol):
    async def load_all(self) -> dict[str, Tracked]:
        """The tracked state of every watched ARN the store knows."""
        ...

    async def commit(
        self,
        watched: str,
        tracked: Tracked,
        events: Sequence[Transition],
        routes: Mapping[str, Sequence[str]] | None = None,
        now: float = 0.0,
    ) -> None:
        """Record the new state of `watched`, its events and, for each event id in
        `routes`, a delivery row per sink named there, in one transaction.

        An event whose id is already stored is not stored (or routed) again."""
        ...

    async def events(self, watched: str | None = None) -> list[Transition]:
        """Stored events in the order they were committed."""
        ...

    async def pending(self, sink: str, limit: int = 100) -> list[Delivery]:
        """The sink's undelivered events, oldest first."""
        ...

    async def delivered(self, seq: int) -> None: ...

    async def retry_later(
        self, seq: int, attempts: int, next_attempt_at: float, error: str
    ) -> None: ...

    async def bury(self, seq: int, reason: str, now: float) -> None:
        """Move a delivery to the dead letters."""
        ...

    async def dead_letters(self, sink: str | None = None) -> list[DeadLetter]: ...

    async def replay(self, seqs: Sequence[int] | None, sink: str | None, now: float) -> int:
        """Move dead letters (these, or all, or all of one sink) back to the outbox,
        due now; returns how many."""
        ...

    async def outbox_stats(self) -> dict[str, OutboxStats]:
        """Per sink: pending rows, the oldest one's creation time, dead letters."""
        ...

    async def followed_sources(self) -> dict[str, float]:
        """Each discovery source (version or pipeline ARN as configured) -> since when
        it has been followed (epoch seconds): builds that had already ended before
        then are history, recorded without an event."""
        ...

    async def mark_followed(self, source: str, since: float) -> None:
        """Remember when `source` began to be followed; the first time counts."""
        ...

    async def prune(self, *, before: float, keep: Collection[str] = ()) -> Pruned:
        """Forget the history older than `before` (epoch seconds): events observed
        before it that no delivery row still needs, and the tracked state of builds
        that had ended (a terminal status) when last seen before it. An undelivered
        event is never forgotten, a dead letter's included (it waits for `deliveries
        replay`), nor the tracked state of an ARN in `keep` (the build ARNs the config
        names: they are polled again at every start), nor a row that cannot be read.

        A forgotten ended build is not announced again when discovery lists it once
        more: discovery takes any build that ended and was created before the same
        horizon as history (see `Discovery`'s `history_horizon`). A file-backed store
        also gives the freed space back to the file system."""
        ...

    async def close(self) -> None: ...
