"""`[ha]`: how replicas sharing one PostgreSQL database (`[state] url`) hand the
leadership on. Only the leader polls, discovers, reads the push queue and delivers;
the others stand by. Unused with the SQLite state file: one daemon, always leading.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from watcher.config._base import PositiveDuration, Strict

MIN_FAILOVER = 1.0
"""Below a second, a busy event loop or a slow commit would pass for a dead leader:
replicas would depose each other over nothing."""

BEATS_PER_FAILOVER = 5
"""Heartbeats (and a standby's looks at the lock) per `failover`: a leader whose
heartbeats fail for four of them steps down (its lease runs out), one before a
standby may depose it."""


def _long_enough(seconds: float) -> float:
    if seconds < MIN_FAILOVER:
        raise ValueError(
            f"expected at least {MIN_FAILOVER:g}s: a shorter one mistakes a busy leader "
            f"for a dead one, got {seconds:g}s"
        )
    return seconds


class HaConfig(Strict):
    """The leadership of replicas sharing one database."""

    failover: Annotated[PositiveDuration, AfterValidator(_long_enough)] = 15.0
    """How long a leader may go without a heartbeat before a standby ends its
    database session and takes over: the longest a paused or cut-off leader holds
    things up. The leader itself stops acting a heartbeat sooner (`failover` less a
    heartbeat after it sent the last one that got through). A leader that exits or is
    killed loses its lock at once, and a standby takes over at its next look (every
    `failover` / 5)."""

    @property
    def heartbeat(self) -> float:
        """Seconds between the leader's heartbeats, and between a standby's attempts."""
        return self.failover / BEATS_PER_FAILOVER
