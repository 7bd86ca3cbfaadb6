"""The SQLite store: one file, one writer (the daemon).

Every poll result that changes anything is one transaction: the new tracked state
and its events. SQLite calls run in a worker thread, one at a time, so the event
loop never blocks on the disk. Never holds a transaction open across an await.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.to_thread

from watcher.model import Transition
from watcher.tracker import Tracked

T = TypeVar("T")

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS watched (
    arn TEXT PRIMARY KEY,
    tracked TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    watched TEXT NOT NULL,
    build_arn TEXT NOT NULL,
    payload TEXT NOT NULL,
    observed_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_watched ON events (watched, seq);
"""


class StoreError(Exception):
    """The state file cannot be used; the message names the file and why."""


class SqliteStore:
    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path
        self._one_at_a_time = anyio.CapacityLimiter(1)

    @classmethod
    async def open(cls, path: Path | str) -> SqliteStore:
        path = Path(path)
        try:
            connection = await anyio.to_thread.run_sync(_connect, path)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{path}: cannot open the state file: {exc}") from None
        return cls(connection, path)

    async def load_all(self) -> dict[str, Tracked]:
        rows = await self._run(
            lambda: self._db.execute("SELECT arn, tracked FROM watched").fetchall()
        )
        return {arn: Tracked.model_validate_json(tracked) for arn, tracked in rows}

    async def commit(self, watched: str, tracked: Tracked, events: Sequence[Transition]) -> None:
        state = tracked.model_dump_json()
        updated = tracked.snapshot.observed_at.isoformat()
        rows = [
            (e.id, e.watched, e.image.arn, e.model_dump_json(), e.observed_at.isoformat())
            for e in events
        ]

        def write() -> None:
            with self._db:  # one transaction: state and events land together or not at all
                self._db.execute(
                    "INSERT INTO watched (arn, tracked, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(arn) DO UPDATE SET tracked = excluded.tracked, "
                    "updated_at = excluded.updated_at",
                    (watched, state, updated),
                )
                self._db.executemany(
                    "INSERT OR IGNORE INTO events (id, watched, build_arn, payload, observed_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    rows,
                )

        await self._run(write)

    async def events(self, watched: str | None = None) -> list[Transition]:
        def read() -> list[tuple[str]]:
            if watched is None:
                return self._db.execute("SELECT payload FROM events ORDER BY seq").fetchall()
            return self._db.execute(
                "SELECT payload FROM events WHERE watched = ? ORDER BY seq", (watched,)
            ).fetchall()

        return [Transition.model_validate_json(payload) for (payload,) in await self._run(read)]

    async def close(self) -> None:
        await self._run(self._db.close)

    async def _run(self, work: Callable[[], T]) -> T:
        try:
            return await anyio.to_thread.run_sync(work, limiter=self._one_at_a_time)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc


def _connect(path: Path) -> sqlite3.Connection:
    if path.parent and not path.parent.exists():
        raise OSError(f"directory {path.parent} does not exist")
    # Used from worker threads, one call at a time (see SqliteStore._run).
    connection = sqlite3.connect(path, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a power loss may drop the last commits but never corrupts;
    # a process crash (the case we restart from) loses nothing.
    connection.execute("PRAGMA synchronous=NORMAL")
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        connection.close()
        raise sqlite3.DatabaseError(
            f"written by a newer ibwatch (schema {version}, this one knows {SCHEMA_VERSION})"
        )
    connection.executescript(_SCHEMA)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return connection
