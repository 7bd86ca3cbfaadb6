"""Which store `[state]` asks for: the SQLite file (`path`, the default) or a shared
PostgreSQL database (`url`). The one place that chooses; the daemon and the operator
commands open their store here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from watcher.store.postgres import PostgresStore
from watcher.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from watcher.config.state import StateConfig

StateStore = SqliteStore | PostgresStore
"""A store that keeps state beyond the process: what `[state]` configures."""


async def open_store(
    state: StateConfig, *, exclusive: bool = False, migrate: bool = True
) -> StateStore:
    """Open the store `state` names. `exclusive` (the daemon) takes the SQLite file's
    one-writer lock; a PostgreSQL database is shared by design (replicas elect a
    leader, and fence their writes, instead). `migrate` False (an operator command):
    a PostgreSQL schema that is missing or behind is refused, not created or upgraded,
    so a command never runs DDL, nor needs the right to (the SQLite file is created
    as ever: it is the caller's own). Raises StoreError."""
    if state.database_url is not None:
        return await PostgresStore.open(state.database_url, migrate=migrate)
    return await SqliteStore.open(state.path, exclusive=exclusive)
