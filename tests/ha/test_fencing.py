"""The epoch fence on a real PostgreSQL, in-process: a deposed leader's writes are
refused; a former leader's write caught in flight does not hold a takeover back,
and ending it ends no session of another database."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import anyio
import psycopg
import pytest
from structlog.testing import capture_logs

from tests.ha.leaders import ended_session, replica, until
from tests.pg_support import ROLE, Server
from watcher.clock import SystemClock
from watcher.model import ImageSnapshot
from watcher.store import Fenced, PostgresStore
from watcher.testing import VirtualClock
from watcher.tracker import observe

FAILOVER = 1.0  # seconds of the database server's clock (the floor [ha] takes)
ARN = "arn:aws:imagebuilder:us-east-1:123456789012:image/fenced/1.0.0/1"


def snapshot(status: str) -> ImageSnapshot:
    return ImageSnapshot.model_validate(
        {
            "arn": ARN,
            "name": "fenced",
            "version": "1.0.0",
            "build": 1,
            "status": status,
            "observed_at": datetime(2026, 1, 1, tzinfo=UTC),
        }
    )


async def test_a_silent_leader_is_deposed_steps_down_at_once_and_its_writes_are_refused(
    postgres_url: str,
) -> None:
    """a's clock stands still, so its heartbeats stop: b ends a's lock session after
    `failover` and leads; a notices its session ended at once, not at a heartbeat."""
    held = VirtualClock()
    async with (
        replica(postgres_url, held, FAILOVER) as a,
        replica(postgres_url, SystemClock(), FAILOVER) as b,
        anyio.create_task_group() as group,
    ):
        with capture_logs() as logs:
            group.start_soon(a.leadership.run, a.lead)
            await until(lambda: a.leadership.role == "leader")
            group.start_soon(b.leadership.run, b.lead)
            await until(lambda: b.leadership.role == "leader")
            await until(lambda: a.leadership.role == "standby")

            tracked, events = observe(ARN, None, snapshot("BUILDING"))
            with pytest.raises(Fenced) as refused:
                await a.store.commit(ARN, tracked, events, {events[0].id: ["log"]})
            await b.store.commit(ARN, tracked, events, {events[0].id: ["log"]})
            stored = [e.id for e in await b.store.events()]
            group.cancel_scope.cancel()
    assert (a.leadership.epoch, b.leadership.epoch) == (1, 2)
    assert (refused.value.mine, refused.value.current) == (1, 2)
    assert (a.terms, a.ended, b.terms, b.ended) == (1, 1, 1, 1)
    [lost] = [line for line in logs if line["event"] == "ibwatch.leader.lost"]
    assert lost["why"].startswith("the session holding the lock ended")
    [deposing] = [line for line in logs if line["event"] == "ibwatch.leader.deposing"]
    assert deposing["silent_s"] >= FAILOVER
    assert stored == [events[0].id], "stored once, by b"


async def test_a_write_caught_in_flight_does_not_hold_the_takeover_back(
    postgres_url: str,
) -> None:
    """A former leader paused inside a fenced write holds FOR SHARE on the leadership
    row: the new leader's epoch bump ends that session instead of waiting for ever."""
    async with (
        await psycopg.AsyncConnection.connect(postgres_url) as paused,
        replica(postgres_url, SystemClock(), FAILOVER) as leader,
    ):
        await paused.execute("SELECT epoch FROM leadership WHERE id = 1 FOR SHARE")
        async with anyio.create_task_group() as group:
            group.start_soon(leader.leadership.run, leader.lead)
            await until(lambda: leader.leadership.role == "leader")
            group.cancel_scope.cancel()
        assert leader.leadership.epoch == 1
        assert await ended_session(paused)


async def test_ending_a_stuck_write_spares_the_sessions_of_another_database(
    postgres_url: str, request: pytest.FixtureRequest
) -> None:
    """A clone of the database (staging made from production, say) has a `leadership`
    table of the same oid: its leader's write in flight is not this one's to end."""
    server: Server = request.getfixturevalue("_postgres_server")
    parts = urlsplit(postgres_url)
    name = parts.path.lstrip("/")
    await (await PostgresStore.open(postgres_url)).close()  # the schema, to be cloned
    with psycopg.connect(server.admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}_clone" TEMPLATE "{name}" OWNER "{ROLE}"')
    clone_url = urlunsplit(parts._replace(path=f"/{name}_clone"))
    try:
        async with (
            await psycopg.AsyncConnection.connect(clone_url) as other,
            await psycopg.AsyncConnection.connect(postgres_url) as stuck,
            replica(postgres_url, SystemClock(), FAILOVER) as leader,
        ):
            await other.execute("SELECT epoch FROM leadership WHERE id = 1 FOR SHARE")
            await stuck.execute("SELECT epoch FROM leadership WHERE id = 1 FOR SHARE")
            async with anyio.create_task_group() as group:
                group.start_soon(leader.leadership.run, leader.lead)
                await until(lambda: leader.leadership.role == "leader")
                group.cancel_scope.cancel()
            assert await ended_session(stuck)
            assert not await ended_session(other), "another database's session was ended"
    finally:
        server.drop_database(clone_url)
