"""What only the PostgreSQL store does, on a real server (tests/pg_support.py): its
schema migrations, the leadership fence, a database restarting under it, and errors
that name the database without its password. The `Store` contract itself is held in
tests/test_store.py, against every store."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from tests.pg_support import PASSWORD, DmlOnlyRole, RestartablePostgres
from tests.store.lossy_proxy import lossy_proxy
from tests.test_store import ARN, at, build_events, snapshot
from watcher.config import from_mapping
from watcher.operator_commands import list_deliveries, replay_deliveries
from watcher.store import Fenced, PostgresStore, StoreError
from watcher.store.pg_schema import LATEST, MIGRATION_LOCK, migrate
from watcher.testing import FakeClock
from watcher.tracker import observe


@asynccontextmanager
async def opened(url: str, **options: Any) -> AsyncIterator[PostgresStore]:
    store = await PostgresStore.open(url, **options)
    try:
        yield store
    finally:
        await store.close()


async def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    """What the database holds, read from outside the store."""
    async with await psycopg.AsyncConnection.connect(url) as connection:
        cursor = await connection.execute(query.encode())
        return await cursor.fetchall()


async def take_over(url: str, holder: str) -> int:
    """What a new leader does to fence the old one: bump the epoch (and name itself in
    `leader_heartbeat`, in the same transaction). Waits for every write transaction
    that read the epoch (FOR SHARE) to end."""
    async with (
        await psycopg.AsyncConnection.connect(url, autocommit=True) as connection,
        connection.transaction(),
    ):
        cursor = await connection.execute(
            "UPDATE leadership SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch"
        )
        row = await cursor.fetchone()
        assert row is not None
        await connection.execute(
            "UPDATE leader_heartbeat SET epoch = %s, holder = %s WHERE id = 1", (row[0], holder)
        )
        return int(row[0])


async def first_sighting(store: PostgresStore, minute: float = 0) -> None:
    tracked, events = observe(ARN, None, snapshot("BUILDING", minute))
    await store.commit(ARN, tracked, events, {e.id: ["chat"] for e in events}, now=at(minute))


# --- schema migrations -------------------------------------------------------------


async def test_a_new_database_gets_every_migration_recorded_once(postgres_url: str) -> None:
    async with opened(postgres_url):
        pass
    async with opened(postgres_url):  # a second start applies nothing again
        pass

    assert await rows(postgres_url, "SELECT version, name FROM schema_migrations") == [
        (1, "initial")
    ]
    assert LATEST == 1
    assert await rows(postgres_url, "SELECT id, epoch FROM leadership") == [(1, 0)]
    assert await rows(
        postgres_url, "SELECT id, epoch, holder, heartbeat_at FROM leader_heartbeat"
    ) == [(1, 0, None, None)]


async def test_two_replicas_starting_together_migrate_once(postgres_url: str) -> None:
    """The advisory lock: without it both would create the same tables, and one fail."""
    applied: list[list[int]] = []

    async def start() -> None:
        async with await psycopg.AsyncConnection.connect(
            postgres_url, autocommit=True
        ) as connection:
            applied.append(await migrate(connection))

    async with anyio.create_task_group() as group:
        for _ in range(4):
            group.start_soon(start)

    assert sorted(applied) == [[], [], [], [1]]


async def test_a_database_migrated_by_a_newer_ibwatch_is_refused(postgres_url: str) -> None:
    async with opened(postgres_url):
        pass
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as db:
        await db.execute("INSERT INTO schema_migrations (version, name) VALUES (99, 'future')")

    with pytest.raises(
        StoreError, match=r"written by a newer ibwatch \(schema 99, this one knows 1\)"
    ):
        await PostgresStore.open(postgres_url)


async def test_an_up_to_date_database_opens_without_waiting_for_the_migration_lock(
    postgres_url: str,
) -> None:
    """Nothing to migrate, nothing to lock: a replica starts while another holds the
    lock (migrating, or stuck)."""
    async with opened(postgres_url):
        pass
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as other:
        await other.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        with anyio.fail_after(10):  # without the fix: waits for the lock forever
            async with opened(postgres_url):
                pass


async def test_a_role_that_may_only_read_and_write_rows_runs_on_an_up_to_date_database(
    postgres_url: str, dml_only_role: DmlOnlyRole
) -> None:
    """Least privilege: once the schema's owner has migrated, the daemon needs no right
    to create or alter anything (no DDL runs on an up-to-date database)."""
    async with opened(postgres_url):  # the owner migrates
        pass
    dml_only_role.grant()

    async with opened(dml_only_role.url) as store:  # as the daemon opens it
        store.fence_epoch = 0
        await first_sighting(store)
        [delivery] = await store.pending("chat")
        await store.bury(delivery.seq, "HTTP 400", now=at(1))
        assert await store.replay(None, None, now=at(2)) == 1
        assert await store.prune(before=at(0)) is not None
    async with opened(dml_only_role.url, migrate=False) as store:  # as a command does
        assert [d.event.id for d in await store.pending("chat")] == [delivery.event.id]


async def test_operator_commands_refuse_a_database_without_the_schema_and_change_nothing(
    postgres_url: str,
) -> None:
    config = from_mapping(
        {"watch": {"arns": [ARN]}, "sinks": [{"type": "log", "name": "log"}]},
        env={"IBWATCH_STATE_URL": postgres_url},
    )
    expected = (
        "has no ibwatch schema yet, this ibwatch needs schema 1: run `ibwatch run` once "
        "to create or upgrade it"
    )
    with pytest.raises(StoreError, match=expected) as listing:
        await list_deliveries(config, io.StringIO())
    with pytest.raises(StoreError, match=expected):
        await replay_deliveries(config, seqs=None, sink=None, clock=FakeClock(), out=io.StringIO())

    assert str(listing.value).startswith("postgresql://ibwatch_test:[REDACTED]@/")
    assert await rows(postgres_url, "SELECT to_regclass('schema_migrations')") == [(None,)]


# --- a store over a shared database ----------------------------------------------


async def test_state_events_and_outbox_survive_reopening(postgres_url: str) -> None:
    async with opened(postgres_url) as store:
        await first_sighting(store)
        [before] = await store.pending("chat")

    async with opened(postgres_url) as store:
        [after] = await store.pending("chat")
        assert list(await store.load_all()) == [ARN]
    assert (after.seq, after.event.id) == (before.seq, before.event.id)


async def test_a_standby_sees_the_outbox_under_the_same_numbers(postgres_url: str) -> None:
    """Delivery numbers are the database's: a second replica (a standby taking over, an
    operator's `deliveries replay`) names the same rows by the same numbers."""
    async with opened(postgres_url) as leader, opened(postgres_url) as standby:
        await build_events(leader, 1, minute=0, sinks=("chat",))
        first = await leader.pending("chat")
        await leader.delivered(first[0].seq)

        assert [d.seq for d in await standby.pending("chat")] == [d.seq for d in first[1:]]
        await build_events(standby, 2, minute=10, sinks=("chat",))
        numbers = [d.seq for d in await leader.pending("chat")]
    assert numbers == sorted(set(numbers))
    assert len(numbers) == 7


async def test_a_failed_write_leaves_neither_state_nor_event(postgres_url: str) -> None:
    """One transaction: if the event insert fails, the state update is rolled back."""
    async with opened(postgres_url) as store:
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as db:
            await db.execute(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'no events today'; END $$"
            )
            await db.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON events "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        tracked, events = observe(ARN, None, snapshot("BUILDING"))
        with pytest.raises(StoreError, match="no events today") as raised:
            await store.commit(ARN, tracked, events)
        assert await store.load_all() == {}
    assert str(raised.value).startswith("postgresql://ibwatch_test:[REDACTED]@/")


async def test_a_store_says_whether_it_is_open(postgres_url: str) -> None:
    store = await PostgresStore.open(postgres_url)
    assert store.is_open
    await store.close()
    assert not store.is_open


# --- fencing --------------------------------------------------------------------------


async def test_an_unfenced_store_writes_whatever_the_epoch(postgres_url: str) -> None:
    """fence_epoch None: operator commands, which lead nothing."""
    async with opened(postgres_url) as store:
        await take_over(postgres_url, "somebody")
        await first_sighting(store)
        assert len(await store.pending("chat")) == 1


async def test_every_write_of_a_replaced_leader_is_refused_and_keeps_nothing(
    postgres_url: str,
) -> None:
    async with opened(postgres_url) as old, opened(postgres_url) as new:
        old.fence_epoch = 0
        await first_sighting(old)
        [delivery] = await old.pending("chat")

        new.fence_epoch = await take_over(postgres_url, "new")

        writes = {
            "commit": lambda: first_sighting(old, minute=5),
            "delivered": lambda: old.delivered(delivery.seq),
            "retry_later": lambda: old.retry_later(delivery.seq, 1, 9.0, "503"),
            "bury": lambda: old.bury(delivery.seq, "refused", now=9.0),
            "replay": lambda: old.replay(None, None, now=9.0),
            "mark_followed": lambda: old.mark_followed("source", 9.0),
            "prune": lambda: old.prune(before=at(10_000)),
        }
        for name, write in writes.items():
            with pytest.raises(Fenced) as refused:
                await write()
            assert "this replica is no longer the leader (its epoch 0, the database's 1)" in str(
                refused.value
            ), name
        assert isinstance(refused.value, StoreError)
        [still] = await new.pending("chat")
        assert (still.seq, still.attempts) == (delivery.seq, 0)
        assert await new.followed_sources() == {}
        await new.delivered(delivery.seq)  # the new leader writes
        assert await new.pending("chat") == []


async def test_a_write_in_flight_lands_before_the_takeover_or_not_at_all(
    postgres_url: str,
) -> None:
    """The old leader's commit has read the epoch (FOR SHARE) and is still writing when
    a new leader bumps it: the bump waits, the commit lands whole, and the old leader's
    next write is refused. Never a write from the old leader after the bump."""
    async with (
        opened(postgres_url) as old,
        await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as gate,
    ):
        old.fence_epoch = 0
        # The commit's event insert waits on an advisory lock the test holds: the
        # commit is then inside its transaction, past the fence, not yet committed.
        await gate.execute(
            "CREATE FUNCTION hold() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN NEW; END $$"
        )
        await gate.execute(
            "CREATE TRIGGER hold BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION hold()"
        )
        await gate.execute("SELECT pg_advisory_lock(4242)")
        epochs: list[int] = []
        async with anyio.create_task_group() as group:
            group.start_soon(first_sighting, old)
            await waiting_on_a_lock(postgres_url, "INSERT INTO events")
            group.start_soon(lambda: append(epochs, take_over(postgres_url, "new")))
            await waiting_on_a_lock(postgres_url, "UPDATE leadership")
            assert epochs == []  # the takeover waits for the write in flight
            await gate.execute("SELECT pg_advisory_unlock(4242)")

        assert epochs == [1]
        assert len(await old.pending("chat")) == 1  # the write in flight landed
        with pytest.raises(Fenced):
            await first_sighting(old, minute=5)
        assert len(await old.events()) == 1


async def test_the_leaders_heartbeat_never_waits_for_a_fenced_write(postgres_url: str) -> None:
    """The heartbeat has a row of its own (`leader_heartbeat`): a fenced write holds
    `leadership` FOR SHARE for as long as it runs, and a heartbeat written there would
    wait that long, and could miss its lease behind a slow write."""
    async with (
        opened(postgres_url) as leader,
        await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as gate,
        await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as beat,
    ):
        leader.fence_epoch = 0
        await gate.execute(
            "CREATE FUNCTION hold() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN NEW; END $$"
        )
        await gate.execute(
            "CREATE TRIGGER hold BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION hold()"
        )
        await gate.execute("SELECT pg_advisory_lock(4242)")
        # Any wait for a row lock at all is an error here, not a delay.
        await beat.execute("SET lock_timeout = '100ms'")
        async with anyio.create_task_group() as group:
            group.start_soon(first_sighting, leader)
            await waiting_on_a_lock(postgres_url, "INSERT INTO events")  # past the fence
            cursor = await beat.execute(
                "UPDATE leader_heartbeat SET heartbeat_at = extract(epoch FROM now()), "
                "holder = 'me' WHERE id = 1 AND epoch = 0 RETURNING epoch"
            )
            assert await cursor.fetchall() == [(0,)]
            await gate.execute("SELECT pg_advisory_unlock(4242)")
        assert len(await leader.pending("chat")) == 1


async def test_a_replay_whose_answer_is_lost_is_not_run_again(postgres_url: str) -> None:
    """The dead letters moved, but the answer never came: tried again, the replay would
    find none left and report 0 moved. It says instead that it may have been made."""
    async with opened(postgres_url) as store:
        await build_events(store, 1, minute=0, sinks=("chat",))
        for delivery in await store.pending("chat"):
            await store.bury(delivery.seq, "HTTP 400", now=at(5))
    async with lossy_proxy(postgres_url) as proxy, opened(proxy.url) as store:
        proxy.lose_next_commit = True
        with pytest.raises(StoreError) as raised:
            await store.replay(None, None, now=at(10))
        assert proxy.lost == 1
        message = str(raised.value)
        assert "the connection was lost before the database confirmed the write, which may " in (
            message
        )
        assert PASSWORD not in message
        assert len(await store.pending("chat")) == 4  # it was made
        assert await store.dead_letters() == []


async def append(into: list[int], value: Any) -> None:
    into.append(await value)


async def waiting_on_a_lock(url: str, query_start: str) -> None:
    """Return once a session of this database runs a statement starting with
    `query_start` and waits on a lock."""
    with anyio.fail_after(10):
        while not await rows(  # noqa: ASYNC110 - another session's wait has no event to await
            url,
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' "
            f"AND position('{query_start}' in query) > 0",
        ):
            await anyio.sleep(0.01)


# --- the database restarting, or unreachable ---------------------------------------


async def test_a_database_restart_shorter_than_the_wait_is_only_a_pause(
    restartable_postgres: RestartablePostgres,
) -> None:
    """The pool checks each connection it hands out: the ones the restart killed are
    replaced, and a commit made while the server is down waits for it."""
    async with opened(restartable_postgres.url) as store:
        await first_sighting(store)
        restartable_postgres.stop()
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: build_events(store, 1, minute=10))
            with anyio.fail_after(10):
                # Until the commit waits for a connection (the pool's own count).
                while not store._pool.get_stats().get("requests_waiting"):  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            await anyio.to_thread.run_sync(restartable_postgres.start)
        assert len(await store.events()) == 5


async def test_a_database_down_longer_than_the_wait_is_a_store_error_until_it_is_back(
    restartable_postgres: RestartablePostgres,
) -> None:
    async with opened(restartable_postgres.url, wait=0.5) as store:
        await first_sighting(store)
        restartable_postgres.stop()
        with pytest.raises(StoreError) as raised:
            await build_events(store, 1, minute=10)
        message = str(raised.value)
        assert message.startswith("postgresql://ibwatch_test:[REDACTED]@/")
        assert "no connection to the database within 0.5s" in message
        restartable_postgres.start()
        with anyio.fail_after(30):
            while True:  # the pool reconnects on its own, with a backoff
                try:
                    await build_events(store, 1, minute=10)
                    break
                except StoreError:
                    continue
        assert len(await store.events()) == 5


@pytest.mark.parametrize("password", [PASSWORD, f"Xy?9{PASSWORD}", f"Xy#9{PASSWORD}"])
async def test_an_unreachable_database_is_named_with_its_password_masked(password: str) -> None:
    url = f"postgresql://ibwatch:{password}@/ibwatch?host=/nonexistent-ibwatch-socket-dir"
    with pytest.raises(StoreError) as raised:
        await PostgresStore.open(url)
    message = str(raised.value)
    assert message.startswith(
        "postgresql://ibwatch:[REDACTED]@/ibwatch?host=/nonexistent-ibwatch-socket-dir: "
        "cannot use the database: connection "
    )
    assert "No such file or directory" in message
    assert PASSWORD not in message
    assert "\n" not in message


async def test_a_database_that_does_not_exist_is_named(postgres_url: str) -> None:
    url = postgres_url.replace("/ibwatch_test_", "/no_such_db_", 1)
    with pytest.raises(StoreError, match=r'cannot use the database: .*database "no_such_db_'):
        await PostgresStore.open(url)


# --- psycopg, only when a url is configured -------------------------------------------


async def test_without_psycopg_a_url_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if it were not installed
    with pytest.raises(StoreError) as raised:
        await PostgresStore.open(f"postgresql://ibwatch:{PASSWORD}@db.internal/ibwatch")
    assert str(raised.value) == (
        "postgresql://ibwatch:[REDACTED]@db.internal/ibwatch: a PostgreSQL [state] url needs "
        "psycopg: pip install 'imagebuilder-watcher[postgres]'"
    )


def test_the_sqlite_default_never_imports_psycopg(tmp_path: Path) -> None:
    script = (
        "import sys, anyio\n"
        "import watcher.cli, watcher.daemon, watcher.operator_commands\n"
        "from watcher.config import from_mapping\n"
        "from watcher.store import open_store\n"
        "from pathlib import Path\n"
        f"config = from_mapping({{'watch': {{'arns': ['{ARN}']}}}}, base_dir=Path(sys.argv[1]))\n"
        "async def main():\n"
        "    store = await open_store(config.state, exclusive=True)\n"
        "    await store.close()\n"
        "anyio.run(main)\n"
        "print(sorted(m for m in sys.modules if m.startswith('psycopg')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert done.stdout == "[]\n"
