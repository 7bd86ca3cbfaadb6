"""The SQLite store: state and events land together, survive reopening, never twice."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from watcher.model import ImageSnapshot, ImageStatus
from watcher.store import MemoryStore, SqliteStore, StoreError
from watcher.tracker import observe

ARN = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0/7"


def snapshot(status: str, minute: int = 0) -> ImageSnapshot:
    return ImageSnapshot(
        arn=ARN,
        status=ImageStatus(status),
        name="web-base",
        version="1.4.0",
        build=7,
        observed_at=datetime(2026, 1, 1, 0, minute, tzinfo=UTC),
    )


async def test_state_and_events_survive_reopening(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "state.db")
    tracked, events = observe(ARN, None, snapshot("BUILDING"))
    await store.commit(ARN, tracked, events)
    tracked, more = observe(ARN, tracked, snapshot("QUEUED_FOR_SCAN", 5))
    await store.commit(ARN, tracked, more)
    await store.close()

    reopened = await SqliteStore.open(tmp_path / "state.db")
    assert await reopened.load_all() == {ARN: tracked}
    assert [e.current.status for e in await reopened.events()] == ["BUILDING", "QUEUED_FOR_SCAN"]
    assert not (await reopened.events())[1].current.status.known
    await reopened.close()


async def test_an_event_committed_twice_is_stored_once(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "state.db")
    tracked, events = observe(ARN, None, snapshot("BUILDING"))
    await store.commit(ARN, tracked, events)
    await store.commit(ARN, tracked, events)
    assert len(await store.events(ARN)) == 1
    await store.close()


async def test_a_failed_write_leaves_neither_state_nor_event(tmp_path: Path) -> None:
    """One transaction: if the event insert fails, the state update is rolled back."""
    path = tmp_path / "state.db"
    store = await SqliteStore.open(path)
    with sqlite3.connect(path) as db:  # sabotage the events table from outside
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
    tracked, events = observe(ARN, None, snapshot("BUILDING"))
    with pytest.raises(StoreError, match="no"):
        await store.commit(ARN, tracked, events)
    assert await store.load_all() == {}
    await store.close()


async def test_a_state_file_in_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(
        StoreError, match=r"cannot open the state file: directory .* does not exist"
    ):
        await SqliteStore.open(tmp_path / "no" / "such" / "state.db")


async def test_a_state_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="written by a newer ibwatch"):
        await SqliteStore.open(path)


async def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(StoreError, match=str(path)):
        await SqliteStore.open(path)


async def test_memory_store_keeps_the_same_contract() -> None:
    store = MemoryStore()
    tracked, events = observe(ARN, None, snapshot("BUILDING"))
    await store.commit(ARN, tracked, events)
    await store.commit(ARN, tracked, events)
    assert await store.load_all() == {ARN: tracked}
    assert len(await store.events()) == 1
