"""`PostgresLeadership`s in the test's own event loop, on a real PostgreSQL: each with
a store of its own and a clock the test picks (the real one, or a `VirtualClock` the
test holds still: a paused process, as far as its own timers go)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import psycopg
from prometheus_client import CollectorRegistry

from watcher.clock import Clock
from watcher.leadership import LeaderMetrics
from watcher.leadership.postgres import LOCK_KEY, PostgresLeadership
from watcher.store import PostgresStore


async def until(condition: Callable[[], bool], seconds: float = 10) -> None:
    with anyio.fail_after(seconds):  # real seconds: only a hang (or a bug) reaches it
        while not condition():  # noqa: ASYNC110 - the leadership's state has no event to await
            await anyio.sleep(0.01)


class Replica:
    """A leadership and its store, counting the terms it served."""

    def __init__(self, store: PostgresStore, url: str, clock: Clock, failover: float) -> None:
        self.store = store
        self.metrics = LeaderMetrics(CollectorRegistry())
        self.leadership = PostgresLeadership(
            url, store=store, clock=clock, failover=failover, metrics=self.metrics
        )
        self.terms = 0
        self.ended = 0

    async def lead(self) -> None:
        self.terms += 1
        try:
            await anyio.sleep_forever()
        finally:
            self.ended += 1

    def fenced(self) -> float:
        return float(self.metrics.fenced_writes._value.get())


@asynccontextmanager
async def replica(url: str, clock: Clock, failover: float) -> AsyncIterator[Replica]:
    store = await PostgresStore.open(url)
    try:
        yield Replica(store, url, clock, failover)
    finally:
        await store.close()


async def lock_holder(url: str) -> int | None:
    """The backend pid holding the leader lock in `url`'s database, if any."""
    async with await psycopg.AsyncConnection.connect(url) as connection:
        cursor = await connection.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND objid::bigint = %s AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())",
            (LOCK_KEY & 0xFFFF_FFFF,),
        )
        row = await cursor.fetchone()
        return None if row is None else int(row[0])


async def terminate(url: str, pid: int) -> None:
    """End backend `pid` as an operator (or a proxy reset) would."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        await connection.execute("SELECT pg_terminate_backend(%s)", (pid,))


async def ended_session(connection: psycopg.AsyncConnection[Any]) -> bool:
    """Whether the server ended `connection`'s session."""
    try:
        await connection.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False
