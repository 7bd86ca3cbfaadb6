"""FakeClock: time moves only when told, or when something sleeps on it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from watcher.testing import FakeClock


async def test_sleep_advances_time_instantly() -> None:
    clock = FakeClock()
    await clock.sleep(3600)
    assert clock.monotonic() == 3600


def test_wall_time_follows_monotonic_time() -> None:
    clock = FakeClock(start=10, epoch=datetime(2026, 5, 1, tzinfo=UTC))
    clock.advance(90)
    assert clock.now() == datetime(2026, 5, 1, 0, 1, 30, tzinfo=UTC)


def test_cannot_go_backwards() -> None:
    with pytest.raises(ValueError, match="cannot go backwards"):
        FakeClock().advance(-1)
