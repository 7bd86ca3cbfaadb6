"""The leader cut off by a network partition, on a real PostgreSQL: packets dropped,
the connections never closed, so nothing but the lease's deadline tells the leader.
The term ends at that deadline, not some seconds later while psycopg, its query
cancelled, asks the unreachable server to cancel it and waits for the answer."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import pytest
from anyio.abc import ByteStream, SocketStream
from structlog.testing import capture_logs

from tests.ha.leaders import replica, until
from tests.pg_proxy import Connect, pg_proxy
from watcher.clock import SystemClock

FAILOVER = 2.0
LEASE = FAILOVER - FAILOVER / 5  # a heartbeat short of the failover


@dataclass
class Partition:
    url: str
    """The database URL through the proxy (the same role, password and database)."""
    cut: bool = False
    """Set: every byte either way is dropped, and new connections are accepted and
    never answered; no connection is closed."""
    shut: Callable[[], None] = lambda: None
    """Close every connection and stop listening."""


@asynccontextmanager
async def partitionable(url: str) -> AsyncIterator[Partition]:
    """A loopback proxy to the database `url` names, which the test can cut off."""

    async def forward(source: ByteStream, sink: ByteStream) -> None:
        with contextlib.suppress(anyio.EndOfStream):
            while True:
                data = await source.receive()
                if not partition.cut:  # cut: read and dropped, so the sender never blocks
                    await sink.send(data)

    async def handle(client: SocketStream, connect: Connect) -> None:
        if partition.cut:  # a new connection's packets go nowhere either
            await forward(client, client)
            return
        async with await connect() as server, anyio.create_task_group() as pipes:
            pipes.start_soon(forward, client, server)
            await forward(server, client)
            pipes.cancel_scope.cancel()

    partition = Partition(url="")
    async with pg_proxy(url, handle) as (partition.url, scope):
        partition.shut = scope.cancel
        yield partition


async def test_a_partitioned_leader_ends_its_term_when_its_lease_runs_out(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Within the lease of the partition (a heartbeat sent just before it may have got
    through) and a margin, where psycopg's own cancellation of the heartbeat and of
    the store's write in flight, each let run, would add up to 10 s: its attempts to
    reach the server are cut short as the term's cancel scopes stay cancelled."""
    clock = SystemClock()
    caplog.set_level(logging.WARNING, logger="psycopg")
    async with (
        partitionable(postgres_url) as network,
        replica(network.url, clock, FAILOVER) as leader,
    ):
        writing = anyio.Event()

        async def lead() -> None:
            """A write in flight when the network goes: the term's end cancels it."""
            leader.terms += 1
            try:
                writing.set()
                await leader.store._write("SELECT pg_sleep(%s)", (60,))
            finally:
                leader.ended += 1

        with capture_logs() as logs:
            async with anyio.create_task_group() as group:
                group.start_soon(leader.leadership.run, lead)
                await until(lambda: leader.leadership.role == "leader")
                with anyio.fail_after(2):
                    await writing.wait()
                # Just after a heartbeat got through: the lease then has its full length.
                extended = leader.leadership._valid_until
                await until(lambda: leader.leadership._valid_until > extended, seconds=2)
                network.cut = True
                cut_at = clock.monotonic()
                await until(lambda: leader.ended == 1, seconds=LEASE + 12)
                ended_after = clock.monotonic() - cut_at
                await until(lambda: leader.leadership.role == "standby", seconds=LEASE + 12)
                standby_after = clock.monotonic() - cut_at
                await until(lambda: any(line["event"] == "ibwatch.leader.lost" for line in logs))
                lost_after = clock.monotonic() - cut_at
                group.cancel_scope.cancel()
        # Connections closed, the listener gone: the store's pool, reconnecting into
        # the partition, closes now, not at its 5 s timeout.
        network.shut()
    [lost] = [line for line in logs if line["event"] == "ibwatch.leader.lost"]
    assert "lease ran out" in lost["why"]
    assert max(ended_after, standby_after, lost_after) < LEASE + 1.0
    assert leader.metrics.leader._value.get() == 0
    assert leader.terms == 1
    # psycopg did try to cancel both queries on the server, and was cut short.
    interrupted = [r for r in caplog.records if "cancellation interrupted" in r.getMessage()]
    assert len(interrupted) == 2
