"""The one source of time for everything in `watcher`.

Logic asks a `Clock` for the time and for sleeps, so tests can substitute a fake
that advances instantly. Nothing outside this module may call `time.monotonic`,
`datetime.now` or `asyncio.sleep` for logic.
"""

from __future__ import annotations

import time
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


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))
