"""Fakes shipped for tests, ours and users': they replace real time and I/O with
deterministic stand-ins. Nothing here may touch the network or the real clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import anyio.lowlevel

__all__ = ["FakeClock"]

_DEFAULT_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class FakeClock:
    """A `Clock` that only moves when told to, or when something sleeps on it.

    `sleep()` advances the clock by the requested amount at once (then yields to
    the event loop), so code that waits an hour runs in microseconds.
    """

    def __init__(self, start: float = 0.0, epoch: datetime = _DEFAULT_EPOCH) -> None:
        self._now = start
        self._epoch = epoch - timedelta(seconds=start)

    def monotonic(self) -> float:
        return self._now

    def now(self) -> datetime:
        return self._epoch + timedelta(seconds=self._now)

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds` (never backwards)."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go backwards (asked to advance {seconds}s)")
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await anyio.lowlevel.checkpoint()
