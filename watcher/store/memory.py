"""An in-memory store: one-shot runs (`wait-until-available`), where nothing should
survive the process, and tests that want a store without a file.

It keeps the whole `Store` contract, the outbox included, and the same tests
hold it to it as `SqliteStore` (tests/test_store.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence

from watcher.model import Transition
from watcher.store.base import DeadLetter, Delivery, OutboxStats, Pruned
from watcher.tracker import Tracked


class MemoryStore:
    def __init__(self) -> None:
        self._tracked: dict[str, Tracked] = {}
        self._events: dict[str, Transition] = {}
        self._outbox: dict[int, Delivery] = {}  # in seq order: dicts keep insertion order
        self._dead: dict[int, DeadLetter] = {}
        self._seq = itertools.count(1)
        self._followed: dict[str, float] = {}

    async def load_all(self) -> dict[str, Tracked]:
        return dict(self._tracked)

    async def commit(
        self,
        watched: str,
        tracked: Tracked,
        events: Sequence[Transition],
        routes: Mapping[str, Sequence[str]] | None = None,
        now: float = 0.0,
    ) -> None:
        self._tracked[watched] = tracked
        for event in events:
            if event.id in self._events:
                continue  # stored before, and routed then: never route it twice
            self._events[event.id] = event
            for sink in (routes or {}).get(event.id, ()):
                self._enqueue(event, sink, now)

    async def events(self, watched: str | None = None) -> list[Transition]:
        return [e for e in self._events.values() if watched in (None, e.watched)]

    async def pending(self, sink: str, limit: int = 100) -> list[Delivery]:
        return [d for d in self._outbox.values() if d.sink == sink][:limit]

    async def delivered(self, seq: int) -> None:
        self._outbox.pop(seq, None)

    async def retry_later(
        self, seq: int, attempts: int, next_attempt_at: float, error: str
    ) -> None:
        old = self._outbox.get(seq)
        if old is not None:  # gone meanwhile (delivered, buried): nothing to update
            self._outbox[seq] = Delivery(
                seq, old.sink, old.event, attempts, next_attempt_at, old.created_at, error
            )

    async def bury(self, seq: int, reason: str, now: float) -> None:
        old = self._outbox.pop(seq, None)
        if old is not None:
            self._dead[seq] = DeadLetter(
                seq, old.sink, old.event, old.attempts, old.created_at, now, reason
            )

    async def dead_letters(self, sink: str | None = None) -> list[DeadLetter]:
        return [d for d in self._dead.values() if sink in (None, d.sink)]

    async def replay(self, seqs: Sequence[int] | None, sink: str | None, now: float) -> int:
        chosen = [
            d
            for d in self._dead.values()
            if (seqs is None or d.seq in seqs) and sink in (None, d.sink)
        ]
        for dead in chosen:
            del self._dead[dead.seq]
            self._enqueue(dead.event, dead.sink, now)
        return len(chosen)

    async def outbox_stats(self) -> dict[str, OutboxStats]:
        stats: dict[str, OutboxStats] = {}
        for row in self._outbox.values():
            old = stats.get(row.sink, OutboxStats())
            oldest = min(row.created_at, old.oldest_created_at or row.created_at)
            stats[row.sink] = OutboxStats(old.pending + 1, oldest, old.dead_letters)
        for dead in self._dead.values():
            old = stats.get(dead.sink, OutboxStats())
            stats[dead.sink] = OutboxStats(old.pending, old.oldest_created_at, old.dead_letters + 1)
        return stats

    async def followed_sources(self) -> dict[str, float]:
        return dict(self._followed)

    async def mark_followed(self, source: str, since: float) -> None:
        self._followed.setdefault(source, since)

    async def prune(self, *, before: float, keep: Collection[str] = ()) -> Pruned:
        ended = [
            arn
            for arn, tracked in self._tracked.items()
            if arn not in keep
            and tracked.snapshot.observed_at.timestamp() < before
            and tracked.snapshot.status.terminal
        ]
        for arn in ended:
            del self._tracked[arn]
        needed = {d.event.id for d in self._outbox.values()}
        needed |= {d.event.id for d in self._dead.values()}
        old = [
            event_id
            for event_id, event in self._events.items()
            if event.observed_at.timestamp() < before and event_id not in needed
        ]
        for event_id in old:
            del self._events[event_id]
        return Pruned(events=len(old), builds=len(ended))

    async def close(self) -> None:
        pass

    def _enqueue(self, event: Transition, sink: str, now: float) -> None:
        # One row per event and sink, as SqliteStore's UNIQUE (event_id, sink).
        if any(d.event.id == event.id and d.sink == sink for d in self._outbox.values()):
            return
        seq = next(self._seq)
        self._outbox[seq] = Delivery(seq, sink, event, 0, now, now)
