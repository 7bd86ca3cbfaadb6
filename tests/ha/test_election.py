"""Who leads, on a real PostgreSQL, in-process: the lock session is watched, a long
write does not pass for silence, a replica that stopped before taking office is
ended, a stranger holding the lock makes standbys unready, and a retired replica
takes no term."""

from __future__ import annotations

import anyio
import psycopg
from structlog.testing import capture_logs

from tests.ha.leaders import ended_session, lock_holder, replica, terminate, until
from watcher.clock import SystemClock
from watcher.leadership.postgres import LOCK_APPLICATION, LOCK_KEY

FAILOVER = 1.0  # the floor [ha] takes: each wait here is a failover or two of it


async def test_the_leader_steps_down_the_moment_its_lock_session_ends(postgres_url: str) -> None:
    """Not at its next heartbeat (6 s away with a 30 s failover): a standby may take
    the lock at once, and both would lead meanwhile."""
    async with replica(postgres_url, SystemClock(), 30.0) as leader:
        with capture_logs() as logs:
            async with anyio.create_task_group() as group:
                group.start_soon(leader.leadership.run, leader.lead)
                await until(lambda: leader.leadership.role == "leader")
                holder = await lock_holder(postgres_url)
                assert holder is not None
                await terminate(postgres_url, holder)
                await until(lambda: leader.leadership.role == "standby", seconds=2)
                group.cancel_scope.cancel()
    assert (leader.terms, leader.ended) == (1, 1)
    [lost] = [line for line in logs if line["event"] == "ibwatch.leader.lost"]
    assert lost["why"].startswith("the session holding the lock ended")


async def test_a_fenced_write_longer_than_the_failover_does_not_end_the_term(
    postgres_url: str,
) -> None:
    """A prune at term start can take a while: its FOR SHARE on `leadership` does not
    hold the heartbeat (a row of its own) back, so neither the leader nor the standby
    takes it for silence."""
    async with (
        replica(postgres_url, SystemClock(), FAILOVER) as leader,
        replica(postgres_url, SystemClock(), FAILOVER) as standby,
    ):
        wrote = anyio.Event()

        async def lead() -> None:
            leader.terms += 1
            await leader.store._write("SELECT pg_sleep(%s)", (1.5 * FAILOVER,))
            wrote.set()
            await anyio.sleep_forever()

        async with anyio.create_task_group() as group:
            group.start_soon(leader.leadership.run, lead)
            await until(lambda: leader.leadership.role == "leader")
            group.start_soon(standby.leadership.run, standby.lead)
            with anyio.fail_after(10):  # a term that ends on the write never writes
                await wrote.wait()
            leader.leadership.check_lease()  # raises if the lease ran out meanwhile
            group.cancel_scope.cancel()
    assert leader.terms == 1
    assert standby.terms == 0


async def test_a_replica_stopped_between_taking_the_lock_and_taking_office_is_ended(
    postgres_url: str,
) -> None:
    """It holds the lock on a quiet lock session and is named nowhere: once that
    session has been quiet for `failover`, a standby ends it and leads."""
    async with (
        await psycopg.AsyncConnection.connect(
            postgres_url, autocommit=True, application_name=LOCK_APPLICATION
        ) as frozen,
        replica(postgres_url, SystemClock(), FAILOVER) as standby,
    ):
        await frozen.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,))
        started = anyio.current_time()
        async with anyio.create_task_group() as group:
            group.start_soon(standby.leadership.run, standby.lead)
            await until(lambda: standby.leadership.role == "leader")
            took = anyio.current_time() - started
            group.cancel_scope.cancel()
        assert await ended_session(frozen)
    assert took < 2 * FAILOVER, f"took over after {took:.2f}s"


async def test_standbys_are_unready_while_a_stranger_holds_the_lock_for_two_failovers(
    postgres_url: str,
) -> None:
    """An operator's session (or another program) holding the key is never ended: the
    standbys say so on /readyz, for someone to look, once nobody has led for long."""
    async with (
        await psycopg.AsyncConnection.connect(
            postgres_url, autocommit=True, application_name="psql"
        ) as stranger,
        replica(postgres_url, SystemClock(), FAILOVER) as standby,
    ):
        await stranger.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,))
        async with anyio.create_task_group() as group:
            group.start_soon(standby.leadership.run, standby.lead)
            await until(lambda: standby.leadership.problem is not None)
            problem = standby.leadership.problem
            group.cancel_scope.cancel()
        assert not await ended_session(stranger)
    assert standby.terms == 0
    assert problem is not None
    assert problem.startswith("no replica has led for ")
    assert "(psql), not an ibwatch replica, holds the leader lock" in problem


async def test_a_retired_replica_takes_no_term_though_the_lock_is_free(postgres_url: str) -> None:
    async with replica(postgres_url, SystemClock(), FAILOVER) as stopping:
        stopping.leadership.retire()
        with anyio.fail_after(5):
            await stopping.leadership.run(stopping.lead)
        assert await lock_holder(postgres_url) is None
    assert (stopping.terms, stopping.leadership.epoch) == (0, None)
