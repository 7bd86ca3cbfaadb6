"""The `Store` contract, held against every store (memory, SQLite, PostgreSQL); then
what only the SQLite file does: survive reopening, write atomically, refuse a file it
cannot use, give space back. What only PostgreSQL does is in tests/store/."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.model import ImageSnapshot, ImageStatus, Transition
from watcher.store import MemoryStore, PostgresStore, SqliteStore, Store, StoreError
from watcher.store.base import OutboxStats, Pruned
from watcher.tracker import Tracked, observe

ARN = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0/7"
VERSION = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0"
START = datetime(2026, 1, 1, tzinfo=UTC)
DAY = 86400.0


def snapshot(status: str, minute: float = 0, arn: str = ARN, build: int = 7) -> ImageSnapshot:
    return ImageSnapshot(
        arn=arn,
        status=ImageStatus(status),
        name="web-base",
        version="1.4.0",
        build=build,
        observed_at=START + timedelta(minutes=minute),
    )


def at(minute: float) -> float:
    """Epoch seconds `minute` minutes after START."""
    return (START + timedelta(minutes=minute)).timestamp()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Each store the watcher ships, held to the same assertions; the PostgreSQL one
    on a real server (tests/pg_support.py), a fresh database per test."""
    opened: Store
    if request.param == "memory":
        opened = MemoryStore()
    elif request.param == "sqlite":
        opened = await SqliteStore.open(tmp_path / "s.db")
    else:
        opened = await PostgresStore.open(request.getfixturevalue("postgres_url"))
    yield opened
    await opened.close()


async def first_sighting(
    store: Store, status: str = "BUILDING", *, minute: float = 0, sinks: tuple[str, ...] = ()
) -> tuple[Tracked, Transition]:
    tracked, events = observe(ARN, None, snapshot(status, minute))
    await store.commit(ARN, tracked, events, {e.id: sinks for e in events}, now=at(minute))
    return tracked, events[0]


async def build_events(
    store: Store, build: int, *, minute: float, sinks: tuple[str, ...] = ()
) -> list[Transition]:
    """The transitions of build number `build` of VERSION, committed as discovery's."""
    arn = f"{VERSION}/{build}"
    tracked: Tracked | None = None
    committed = []
    for step, status in enumerate(["BUILDING", "TESTING", "DISTRIBUTING", "AVAILABLE"]):
        tracked, events = observe(VERSION, tracked, snapshot(status, minute + step, arn, build))
        await store.commit(arn, tracked, events, {e.id: sinks for e in events}, now=at(minute))
        committed += events
    return committed


# --- state and events -----------------------------------------------------------


async def test_committed_state_and_events_are_read_back(store: Store) -> None:
    tracked, events = observe(ARN, None, snapshot("BUILDING"))
    await store.commit(ARN, tracked, events)
    tracked, more = observe(ARN, tracked, snapshot("QUEUED_FOR_SCAN", 5))
    await store.commit(ARN, tracked, more)

    assert await store.load_all() == {ARN: tracked}
    assert [e.current.status for e in await store.events()] == ["BUILDING", "QUEUED_FOR_SCAN"]
    assert not (await store.events())[1].current.status.known


async def test_an_event_committed_twice_is_stored_and_routed_once(store: Store) -> None:
    tracked, events = observe(ARN, None, snapshot("BUILDING"))
    routes = {events[0].id: ["chat"]}
    await store.commit(ARN, tracked, events, routes)
    await store.commit(ARN, tracked, events, routes)

    assert len(await store.events(ARN)) == 1
    assert len(await store.pending("chat")) == 1


async def test_events_can_be_read_per_watched_arn(store: Store) -> None:
    await first_sighting(store)
    await build_events(store, 1, minute=0)

    assert len(await store.events(ARN)) == 1
    assert len(await store.events(VERSION)) == 4


async def test_a_source_is_followed_since_the_first_time_it_was_marked(store: Store) -> None:
    await store.mark_followed(VERSION, 100.0)
    await store.mark_followed(VERSION, 200.0)

    assert await store.followed_sources() == {VERSION: 100.0}


# --- the outbox -------------------------------------------------------------------


async def test_each_routed_sink_gets_a_pending_delivery_oldest_first(store: Store) -> None:
    events = await build_events(store, 1, minute=0, sinks=("chat", "hook"))

    for sink in ("chat", "hook"):
        pending = await store.pending(sink)
        assert [d.event.id for d in pending] == [e.id for e in events]
        assert all(d.attempts == 0 and d.sink == sink for d in pending)
    assert [d.event.id for d in await store.pending("chat", limit=2)] == [e.id for e in events[:2]]
    assert await store.pending("nobody") == []


async def test_a_delivered_row_leaves_the_outbox(store: Store) -> None:
    await first_sighting(store, sinks=("chat",))
    [delivery] = await store.pending("chat")

    await store.delivered(delivery.seq)

    assert await store.pending("chat") == []
    assert await store.outbox_stats() == {}


async def test_a_retry_later_keeps_the_row_with_its_attempts_and_error(store: Store) -> None:
    await first_sighting(store, sinks=("chat",))
    [delivery] = await store.pending("chat")

    await store.retry_later(delivery.seq, 3, 1234.5, "503 from the receiver")

    [again] = await store.pending("chat")
    assert (again.seq, again.attempts, again.next_attempt_at, again.last_error) == (
        delivery.seq,
        3,
        1234.5,
        "503 from the receiver",
    )
    assert again.created_at == delivery.created_at


async def test_a_buried_row_becomes_a_dead_letter(store: Store) -> None:
    _, event = await first_sighting(store, sinks=("chat", "hook"))
    [delivery] = await store.pending("chat")

    await store.bury(delivery.seq, "400: refused", now=at(10))

    assert await store.pending("chat") == []
    [dead] = await store.dead_letters()
    assert (dead.sink, dead.event.id, dead.reason, dead.died_at) == (
        "chat",
        event.id,
        "400: refused",
        at(10),
    )
    assert await store.dead_letters("hook") == []
    assert await store.outbox_stats() == {
        "chat": OutboxStats(pending=0, oldest_created_at=None, dead_letters=1),
        "hook": OutboxStats(pending=1, oldest_created_at=at(0), dead_letters=0),
    }


def readable(stored: str | None, given: str) -> bool:
    """Whether `stored` is the error text `given`, as a store may keep it: the same, or
    (PostgreSQL, whose text holds no NUL) with each NUL replaced by U+FFFD."""
    return stored in (given, given.replace("\x00", "\ufffd"))


async def test_an_error_text_with_a_nul_character_is_kept_readable(store: Store) -> None:
    """A receiver's error body may hold a NUL (sinks/http.py quotes it): the write
    still lands, on every store."""
    await first_sighting(store, sinks=("chat", "hook"))
    [chat] = await store.pending("chat")
    [hook] = await store.pending("hook")

    await store.retry_later(chat.seq, 1, at(1), "HTTP 500: oops\x00garbage")
    await store.bury(hook.seq, "HTTP 400: bad\x00", now=at(2))

    [again] = await store.pending("chat")
    [dead] = await store.dead_letters()
    assert readable(again.last_error, "HTTP 500: oops\x00garbage")
    assert readable(dead.reason, "HTTP 400: bad\x00")


async def test_an_event_whose_reason_holds_a_nul_character_commits_whole(store: Store) -> None:
    """The event and the tracked state are JSON, which writes a NUL as \\u0000: read
    back exactly, on every store."""
    failed = snapshot("FAILED").model_copy(update={"reason": "step failed:\x00 exit 1"})
    tracked, events = observe(ARN, None, failed)
    await store.commit(ARN, tracked, events, {e.id: ["chat"] for e in events}, now=at(0))

    [event] = await store.events()
    assert event.current.reason == "step failed:\x00 exit 1"
    assert await store.load_all() == {ARN: tracked}
    [delivery] = await store.pending("chat")
    assert delivery.event == event


async def test_replay_moves_chosen_dead_letters_back_due_now(store: Store) -> None:
    await build_events(store, 1, minute=0, sinks=("chat", "hook"))
    for sink in ("chat", "hook"):
        for delivery in await store.pending(sink):
            await store.bury(delivery.seq, "refused", now=at(5))
    chat_dead = await store.dead_letters("chat")

    assert await store.replay([chat_dead[0].seq], None, now=at(20)) == 1
    assert await store.replay(None, "hook", now=at(30)) == 4
    assert await store.replay([999], None, now=at(40)) == 0

    [replayed] = await store.pending("chat")
    assert replayed.event.id == chat_dead[0].event.id
    assert (replayed.attempts, replayed.next_attempt_at) == (0, at(20))
    assert len(await store.pending("hook")) == 4
    assert len(await store.dead_letters()) == 3


async def test_a_sink_named_twice_for_an_event_gets_one_row(store: Store) -> None:
    tracked, events = observe(ARN, None, snapshot("BUILDING"))
    await store.commit(ARN, tracked, events, {events[0].id: ["chat", "chat"]})

    assert len(await store.pending("chat")) == 1


async def test_updating_a_row_that_is_gone_changes_nothing(store: Store) -> None:
    await first_sighting(store, sinks=("chat",))
    [delivery] = await store.pending("chat")
    await store.delivered(delivery.seq)

    await store.retry_later(delivery.seq, 2, 99.0, "late")
    await store.bury(delivery.seq, "late", now=99.0)
    await store.delivered(delivery.seq)

    assert await store.pending("chat") == []
    assert await store.dead_letters() == []


# --- pruning ----------------------------------------------------------------------


async def test_prune_forgets_delivered_events_older_than_the_cutoff(store: Store) -> None:
    old = await build_events(store, 1, minute=0)
    new = await build_events(store, 2, minute=60)

    assert await store.prune(before=at(30)) == Pruned(events=len(old), builds=1)

    assert [e.id for e in await store.events()] == [e.id for e in new]


async def test_prune_never_forgets_an_event_still_to_be_delivered(store: Store) -> None:
    events = await build_events(store, 1, minute=0, sinks=("chat",))
    first = (await store.pending("chat"))[0]
    await store.delivered(first.seq)

    await store.prune(before=at(24 * 60))

    assert [e.id for e in await store.events()] == [e.id for e in events[1:]]
    assert [d.event.id for d in await store.pending("chat")] == [e.id for e in events[1:]]


async def test_prune_keeps_every_dead_letter_and_its_event(store: Store) -> None:
    """A dead letter is an event never delivered: it waits for `deliveries replay`,
    however old."""
    events = await build_events(store, 1, minute=0, sinks=("chat",))
    for delivery in await store.pending("chat"):
        await store.bury(delivery.seq, "refused", now=at(10))

    assert await store.prune(before=at(365 * 24 * 60)) == Pruned(events=0, builds=1)

    assert [d.event.id for d in await store.dead_letters()] == [e.id for e in events]
    assert [e.id for e in await store.events()] == [e.id for e in events]
    assert await store.replay(None, None, now=at(60)) == len(events)


async def test_a_tracked_row_that_cannot_be_read_is_kept(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "state.db")
    await build_events(store, 1, minute=0)
    with sqlite3.connect(tmp_path / "state.db") as db:
        db.execute("UPDATE watched SET tracked = '{\"snapshot\": 5}'")

    assert await store.prune(before=at(24 * 60)) == Pruned(events=4, builds=0)
    await store.close()
    with sqlite3.connect(tmp_path / "state.db") as db:
        assert db.execute("SELECT COUNT(*) FROM watched").fetchone() == (1,)


async def test_prune_forgets_builds_that_ended_before_the_cutoff_and_no_other(
    store: Store,
) -> None:
    """Ended long ago: forgotten (discovery takes it as history if listed again).
    Still in progress, ended since, or named in `keep` (a configured build ARN,
    polled at every start): kept."""
    await build_events(store, 1, minute=0)  # AVAILABLE at minute 3
    await build_events(store, 2, minute=0)
    await build_events(store, 3, minute=100)
    in_progress, _ = observe(ARN, None, snapshot("BUILDING", 0))
    await store.commit(ARN, in_progress, [])

    pruned = await store.prune(before=at(60), keep=[f"{VERSION}/2"])

    assert pruned.builds == 1
    assert sorted(await store.load_all()) == sorted([ARN, f"{VERSION}/2", f"{VERSION}/3"])


async def test_prune_with_nothing_old_forgets_nothing(store: Store) -> None:
    events = await build_events(store, 1, minute=60)

    assert await store.prune(before=at(0)) == Pruned()
    assert len(await store.events()) == len(events)


# --- the SQLite file ----------------------------------------------------------------


async def test_state_and_events_survive_reopening(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "state.db")
    tracked, events = observe(ARN, None, snapshot("BUILDING"))
    await store.commit(ARN, tracked, events, {events[0].id: ["chat"]}, now=at(0))
    await store.close()

    reopened = await SqliteStore.open(tmp_path / "state.db")
    assert await reopened.load_all() == {ARN: tracked}
    assert [e.id for e in await reopened.events()] == [events[0].id]
    assert [d.event.id for d in await reopened.pending("chat")] == [events[0].id]
    await reopened.close()


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


async def test_a_store_says_whether_it_is_open(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "state.db")
    assert store.is_open
    await store.close()
    assert not store.is_open


def file_size(path: Path) -> int:
    """The state file and its write-ahead log: what the disk holds for it."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def settled_size(path: Path) -> int:
    """`file_size` once the write-ahead log is written back and emptied, so that two
    sizes compare the data, not how far the log happened to have grown."""
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        db.close()
    return file_size(path)


async def commit_delivered_builds(store: SqliteStore, builds: range, *, day: int) -> None:
    """The events of `builds`, all on `day`, each delivered as the dispatcher would."""
    for build in builds:
        await build_events(store, build, minute=day * 24 * 60, sinks=("chat",))
    for delivery in await store.pending("chat", limit=10_000):
        await store.delivered(delivery.seq)


async def test_the_file_stays_bounded_over_many_builds_when_pruned(tmp_path: Path) -> None:
    """A day of builds per batch, keeping one day of history, pruned after each
    batch as the daemon does: after ten times as many builds the file holds at most
    two days of events and tracked builds. Unpruned, it would be about eight times
    the first day's size."""
    path = tmp_path / "state.db"
    store = await SqliteStore.open(path)
    per_day = 40

    await commit_delivered_builds(store, range(per_day), day=0)
    one_day = settled_size(path)
    for day in range(1, 10):
        await commit_delivered_builds(store, range(day * per_day, (day + 1) * per_day), day=day)
        await store.prune(before=at((day - 1) * 24 * 60))
    ten_days = settled_size(path)
    kept = len(await store.events())
    tracked = len(await store.load_all())
    await store.close()

    assert kept <= 2 * per_day * 4  # two days of builds, four transitions each
    assert tracked <= 2 * per_day
    assert ten_days < 2.5 * one_day


async def test_a_file_from_before_pruning_gives_space_back_after_its_first_prune(
    tmp_path: Path,
) -> None:
    """Files made before auto_vacuum was turned on are converted by the first prune."""
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:  # as an older ibwatch left it: no auto_vacuum
        db.execute("PRAGMA auto_vacuum = NONE")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE placeholder (x)")
    db.close()
    store = await SqliteStore.open(path)
    await commit_delivered_builds(store, range(100), day=0)
    full = settled_size(path)

    await store.prune(before=at(2 * 24 * 60))
    emptied = file_size(path)
    await commit_delivered_builds(store, range(100, 200), day=3)
    await store.prune(before=at(5 * 24 * 60))
    await store.close()

    assert emptied < full / 2
    assert file_size(path) < full / 2
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
    db.close()
