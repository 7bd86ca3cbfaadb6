"""The `Sink` protocol: one method."""

from __future__ import annotations

from typing import Protocol

from watcher.model import Transition


class Sink(Protocol):
    async def send(self, event: Transition) -> None:
        """Deliver one committed transition."""
        ...
