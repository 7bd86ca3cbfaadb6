"""Which replica acts. The leader polls, discovers, reads the push queue and
delivers; a standby only answers its probes, ready to take over.

With the SQLite state file there is one daemon and it always leads (`Sole`). With
PostgreSQL state several replicas share one database and elect their leader through
it (`watcher.leadership.postgres`, imported only then: it needs psycopg). A term of
leadership is a call of the `lead` function the daemon gives `Leadership.run`; the
term ends by cancelling it, so a replica that lost the leadership stops acting at once.
What acts outside (a delivery sent, a poll) asks `check_lease()` first: a leader
paused past its lease must not act on what it held in memory before it notices.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

Role = Literal["leader", "standby"]

Lead = Callable[[], Awaitable[None]]
"""One term's work; runs until cancelled."""


class LeaseExpired(Exception):
    """This replica may not act now: its term is over, or no heartbeat got through for
    as long as its lease lasts (a newer leader may already act). Raised by
    `Leadership.check_lease`; it ends the term."""


class LeaderMetrics:
    """The leadership's own series, in the daemon's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.leader = Gauge(
            "ibwatch_leader",
            "1 while this replica leads (polls and delivers), 0 while it stands by.",
            registry=registry,
        )
        self.epoch = Gauge(
            "ibwatch_leader_epoch",
            "The leadership epoch of this replica's current or last term (0: never led; "
            "always 0 with SQLite state).",
            registry=registry,
        )
        self.fenced_writes = Counter(
            "ibwatch_fenced_writes",
            "Writes refused because a newer leader took over (the epoch fence): each "
            "makes this replica step down.",
            registry=registry,
        )


class Leadership(Protocol):
    @property
    def role(self) -> Role:
        """What this replica is now."""
        ...

    @property
    def shared(self) -> bool:
        """Whether other replicas may lead instead of this one (a shared database)."""
        ...

    @property
    def problem(self) -> str | None:
        """Why this replica could not lead now (its database is unreachable), or None."""
        ...

    async def run(self, lead: Lead) -> None:
        """Until cancelled (or, once `retire()` is called, until the current term, if
        any, is over): each time this replica becomes the leader, run `lead()`, and
        cancel it the moment the leadership is lost."""
        ...

    def check_lease(self) -> None:
        """Raise `LeaseExpired` unless this replica may act now. Cheap (no I/O): asked
        before each delivery is sent and each poll."""
        ...

    def retire(self) -> None:
        """Take no new term from now on: the daemon is stopping. A term in progress
        goes on (so that deliveries can drain) until it is cancelled."""
        ...


class Sole:
    """The only daemon on its state file: always the leader, for one endless term."""

    role: Role = "leader"
    shared = False
    problem: str | None = None

    def __init__(self, metrics: LeaderMetrics | None = None) -> None:
        if metrics is not None:
            metrics.leader.set(1)

    async def run(self, lead: Lead) -> None:
        await lead()

    def check_lease(self) -> None:
        """Always leading: nobody else can take over an SQLite file."""

    def retire(self) -> None:
        """Nothing to give up: the one term ends with the daemon."""
