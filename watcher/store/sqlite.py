"""The SQLite store: one file, one writer (the daemon).

Every poll result that changes anything is one transaction: the new tracked state
and its events. SQLite calls run in a worker thread, one at a time, so the event
loop never blocks on the disk. Never holds a transaction open across an await.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.to_thread

from watcher.model import Transition
from watcher.store.base import DeadLetter, Delivery, OutboxStats, Pruned, ended_build
from watcher.store.errors import StoreError
from watcher.store.writer_lock import LockHeld, WriterLock
from watcher.tracker import Tracked

T = TypeVar("T")

SCHEMA_VERSION = 3  # 2 added the outbox: deliveries and dead_letters; 3 discovery sources

# A file made before pruning existed has no auto_vacuum; the first prune converts it
# (see _give_space_back). The schema itself did not change for it.
_INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL
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
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL REFERENCES events (id),
    sink TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    created_at REAL NOT NULL,
    last_error TEXT,
    UNIQUE (event_id, sink)
);
CREATE INDEX IF NOT EXISTS deliveries_by_sink ON deliveries (sink, seq);
CREATE TABLE IF NOT EXISTS sources (
    source TEXT PRIMARY KEY,
    followed_since REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL REFERENCES events (id),
    sink TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    created_at REAL NOT NULL,
    died_at REAL NOT NULL,
    reason TEXT NOT NULL
);
"""


class _Damaged(sqlite3.DatabaseError):
    """The file is an SQLite database whose pages are broken."""


class SqliteStore:
    def __init__(
        self, connection: sqlite3.Connection, path: Path, lock: WriterLock | None = None
    ) -> None:
        self._db = connection
        self.path = path
        self._one_at_a_time = anyio.Lock()
        self._lock = lock
        self.is_open = True
        """False once `close` began: what /readyz reports of the store."""

    @classmethod
    async def open(cls, path: Path | str, *, exclusive: bool = False) -> SqliteStore:
        """Open (or create) the state file; `exclusive` (the daemon) also takes the
        one-writer lock, and refuses if another process holds it."""
        path = Path(path)
        # No directory, no lock: _open's message says what is missing.
        lock = WriterLock(path) if exclusive and path.parent.is_dir() else None
        if lock is not None:
            try:
                lock.acquire()
            except LockHeld as exc:
                raise StoreError(f"{path}: {exc}") from None
            except OSError as exc:
                raise StoreError(f"{path}: cannot lock the state file: {exc}") from None
        try:
            return cls(await cls._open(path), path, lock)
        except BaseException:
            if lock is not None:
                lock.release()
            raise

    @classmethod
    async def _open(cls, path: Path) -> sqlite3.Connection:
        try:
            connection = await anyio.to_thread.run_sync(_connect, path)
        except _Damaged as exc:
            raise StoreError(
                f"{path}: the state file is damaged ({exc}). Restore it from a backup, or "
                "move it aside to start afresh: its undelivered events would then be lost, "
                "and builds it knew are announced again"
            ) from None
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{path}: cannot open the state file: {exc}") from None
        return connection

    async def load_all(self) -> dict[str, Tracked]:
        rows = await self._run(
            lambda: self._db.execute("SELECT arn, tracked FROM watched").fetchall()
        )
        return {arn: Tracked.model_validate_json(tracked) for arn, tracked in rows}

    async def commit(
        self,
        watched: str,
        tracked: Tracked,
        events: Sequence[Transition],
        routes: Mapping[str, Sequence[str]] | None = None,
        now: float = 0.0,
    ) -> None:
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
                for row in rows:
                    stored = self._db.execute(
                        "INSERT OR IGNORE INTO events "
                        "(id, watched, build_arn, payload, observed_at) VALUES (?, ?, ?, ?, ?)",
                        row,
                    ).rowcount
                    # An event stored before was routed then too: never route it twice.
                    for sink in (routes or {}).get(row[0], ()) if stored else ():
                        self._db.execute(
                            "INSERT OR IGNORE INTO deliveries (event_id, sink, next_attempt_at, "
                            "created_at) VALUES (?, ?, ?, ?)",
                            (row[0], sink, now, now),
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

    async def pending(self, sink: str, limit: int = 100) -> list[Delivery]:
        rows = await self._run(
            lambda: self._db.execute(
                "SELECT d.seq, d.sink, e.payload, d.attempts, d.next_attempt_at, d.created_at, "
                "d.last_error FROM deliveries d JOIN events e ON e.id = d.event_id "
                "WHERE d.sink = ? ORDER BY d.seq LIMIT ?",
                (sink, limit),
            ).fetchall()
        )
        return [
            Delivery(
                seq, name, Transition.model_validate_json(payload), attempts, due, created, error
            )
            for seq, name, payload, attempts, due, created, error in rows
        ]

    async def delivered(self, seq: int) -> None:
        await self._write("DELETE FROM deliveries WHERE seq = ?", (seq,))

    async def retry_later(
        self, seq: int, attempts: int, next_attempt_at: float, error: str
    ) -> None:
        await self._write(
            "UPDATE deliveries SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE seq = ?",
            (attempts, next_attempt_at, error, seq),
        )

    async def bury(self, seq: int, reason: str, now: float) -> None:
        def move() -> None:
            with self._db:
                self._db.execute(
                    "INSERT INTO dead_letters "
                    "(event_id, sink, attempts, created_at, died_at, reason) "
                    "SELECT event_id, sink, attempts, created_at, ?, ? "
                    "FROM deliveries WHERE seq = ?",
                    (now, reason, seq),
                )
                self._db.execute("DELETE FROM deliveries WHERE seq = ?", (seq,))

        await self._run(move)

    async def dead_letters(self, sink: str | None = None) -> list[DeadLetter]:
        rows = await self._run(
            lambda: self._db.execute(
                "SELECT d.seq, d.sink, e.payload, d.attempts, d.created_at, d.died_at, d.reason "
                "FROM dead_letters d JOIN events e ON e.id = d.event_id "
                "WHERE ? IS NULL OR d.sink = ? ORDER BY d.seq",
                (sink, sink),
            ).fetchall()
        )
        return [
            DeadLetter(
                seq, name, Transition.model_validate_json(payload), attempts, created, died, reason
            )
            for seq, name, payload, attempts, created, died, reason in rows
        ]

    async def replay(self, seqs: Sequence[int] | None, sink: str | None, now: float) -> int:
        def move() -> int:
            chosen = [
                seq
                for (seq,) in self._db.execute(
                    "SELECT seq FROM dead_letters WHERE ? IS NULL OR sink = ? ORDER BY seq",
                    (sink, sink),
                ).fetchall()
                if seqs is None or seq in seqs
            ]
            with self._db:
                for seq in chosen:
                    self._db.execute(
                        "INSERT OR IGNORE INTO deliveries (event_id, sink, next_attempt_at, "
                        "created_at) SELECT event_id, sink, ?, ? FROM dead_letters WHERE seq = ?",
                        (now, now, seq),
                    )
                    self._db.execute("DELETE FROM dead_letters WHERE seq = ?", (seq,))
            return len(chosen)

        return await self._run(move)

    async def outbox_stats(self) -> dict[str, OutboxStats]:
        def read() -> dict[str, OutboxStats]:
            stats: dict[str, OutboxStats] = {}
            for sink, pending, oldest in self._db.execute(
                "SELECT sink, COUNT(*), MIN(created_at) FROM deliveries GROUP BY sink"
            ):
                stats[sink] = OutboxStats(pending=pending, oldest_created_at=oldest)
            for sink, dead in self._db.execute(
                "SELECT sink, COUNT(*) FROM dead_letters GROUP BY sink"
            ):
                stats[sink] = replace(stats.get(sink, OutboxStats()), dead_letters=dead)
            return stats

        return await self._run(read)

    async def followed_sources(self) -> dict[str, float]:
        rows = await self._run(
            lambda: self._db.execute("SELECT source, followed_since FROM sources").fetchall()
        )
        return {source: since for source, since in rows}

    async def mark_followed(self, source: str, since: float) -> None:
        await self._write(
            "INSERT OR IGNORE INTO sources (source, followed_since) VALUES (?, ?)",
            (source, since),
        )

    async def prune(self, *, before: float, keep: Collection[str] = ()) -> Pruned:
        kept = frozenset(keep)

        def forget() -> Pruned:
            with self._db:
                # observed_at is ISO 8601 with its offset; julianday reads it as UTC.
                events = self._db.execute(
                    "DELETE FROM events "
                    "WHERE (julianday(observed_at) - 2440587.5) * 86400.0 < ? "
                    "AND id NOT IN (SELECT event_id FROM deliveries) "
                    "AND id NOT IN (SELECT event_id FROM dead_letters)",
                    (before,),
                ).rowcount
                ended = [
                    (arn,)
                    for arn, tracked in self._db.execute(
                        "SELECT arn, tracked FROM watched "
                        "WHERE (julianday(updated_at) - 2440587.5) * 86400.0 < ?",
                        (before,),
                    )
                    if arn not in kept and ended_build(tracked)
                ]
                self._db.executemany("DELETE FROM watched WHERE arn = ?", ended)
            if events or ended:
                self._give_space_back()
            return Pruned(events=events, builds=len(ended))

        return await self._run(forget)

    def _give_space_back(self) -> None:
        """Shrink the file by the pages the deletes freed (else SQLite keeps them
        for reuse, and the file never shrinks). Best effort: another process
        reading the file (`ibwatch deliveries`) can make this busy; the next prune
        tries again, and the deletes stand either way."""
        try:
            if self._db.execute("PRAGMA auto_vacuum").fetchone()[0] == _INCREMENTAL:
                # As a script, stepped to its end: execute() would step it once,
                # and free a single page.
                self._db.executescript("PRAGMA incremental_vacuum;")
            else:
                # A file from before pruning: VACUUM once, now that it is mostly
                # free pages and cheap to rewrite, to turn incremental vacuum on.
                self._db.execute("PRAGMA auto_vacuum = INCREMENTAL")
                self._db.execute("VACUUM")
            # In WAL mode the file shrinks only once the log is written back; the
            # log itself is emptied too.
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.OperationalError:
            pass

    async def close(self) -> None:
        self.is_open = False
        try:
            await self._run(self._db.close)
        finally:
            if self._lock is not None:
                self._lock.release()

    async def _write(self, sql: str, parameters: tuple[object, ...]) -> None:
        def write() -> None:
            with self._db:
                self._db.execute(sql, parameters)

        await self._run(write)

    async def _run(self, work: Callable[[], T]) -> T:
        try:
            async with self._one_at_a_time:
                return await anyio.to_thread.run_sync(work)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc


def _connect(path: Path) -> sqlite3.Connection:
    if path.parent and not path.parent.exists():
        raise OSError(f"directory {path.parent} does not exist")
    # Used from worker threads, one call at a time (see SqliteStore._run).
    connection = sqlite3.connect(path, check_same_thread=False)
    # Before anything creates the file's first page: a new file frees space as it
    # is pruned. (On an existing file this only takes effect at a VACUUM.)
    connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
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
    try:
        # Damage is found here, at start, with a message that says what to do,
        # rather than by whichever query first reads a broken page.
        verdict = [row[0] for row in connection.execute("PRAGMA quick_check(5)")]
    except sqlite3.DatabaseError as exc:
        connection.close()
        raise _Damaged(str(exc)) from None
    if verdict != ["ok"]:
        connection.close()
        raise _Damaged("; ".join(verdict))
    connection.executescript(_SCHEMA)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return connection
