"""The one source of time for everything in `watcher`.

Logic asks a `Clock` for the time, for sleeps and for deadlines, so tests can
substitute a fake that advances instantly. Nothing outside this module may call
`time.monotonic`, `datetime.now`, `asyncio.sleep` or anyio's own deadlines
(`anyio.move_on_after`) for logic.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Protocol

import anyio


class Clock(Protocol):
    """Monotonic time for intervals, wall time for timestamps, and sleeping."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards; only differences mean anything."""
        ...

    def now(self) -> datetime:
        """The current wall-clock time, timezone-aware in UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` on this clock."""
        ...

    def move_on_after(self, seconds: float) -> AbstractContextManager[anyio.CancelScope]:
        """A cancel scope cancelled once `seconds` have passed on this clock, used as
        `with clock.move_on_after(30) as scope:`; afterwards `scope.cancelled_caught`
        says whether the deadline cut the body short. Like `anyio.move_on_after`: no
        task of its own, and an error in the body is raised as itself. `math.inf`
        means no deadline."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))

    def move_on_after(self, seconds: float) -> anyio.CancelScope:
        # anyio's deadlines run on the event loop's clock, as `sleep` does.
        return anyio.move_on_after(max(0.0, seconds))
