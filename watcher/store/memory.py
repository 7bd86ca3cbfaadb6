"""An in-memory store for one-shot runs (`wait-until-available`): nothing survives
the process, which is what a CI step wants."""

from __future__ import annotations

from collections.abc import Sequence

from watcher.model import Transition
from watcher.tracker import Tracked


class MemoryStore:
    def __init__(self) -> None:
        self._tracked: dict[str, Tracked] = {}
        self._events: dict[str, Transition] = {}

    async def load_all(self) -> dict[str, Tracked]:
        return dict(self._tracked)

    async def commit(self, watched: str, tracked: Tracked, events: Sequence[Transition]) -> None:
        self._tracked[watched] = tracked
        for event in events:
            self._events.setdefault(event.id, event)

    async def events(self, watched: str | None = None) -> list[Transition]:
        return [e for e in self._events.values() if watched in (None, e.watched)]

    async def close(self) -> None:
        pass
