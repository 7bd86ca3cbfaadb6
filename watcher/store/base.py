"""The `Store` protocol."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from watcher.model import Transition
from watcher.tracker import Tracked


class Store(Protocol):
    async def load_all(self) -> dict[str, Tracked]:
        """The tracked state of every watched ARN the store knows."""
        ...

    async def commit(self, watched: str, tracked: Tracked, events: Sequence[Transition]) -> None:
        """Record the new state of `watched` and its events in one transaction.

        An event whose id is already stored is not stored again."""
        ...

    async def events(self, watched: str | None = None) -> list[Transition]:
        """Stored events in the order they were committed."""
        ...

    async def close(self) -> None: ...
