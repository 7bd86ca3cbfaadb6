"""A loopback TCP proxy in front of the tests' PostgreSQL that can lose the answer to
a COMMIT: the server has committed, and the client sees its connection end instead
of the acknowledgement, as when a network or a failover cuts it at that moment.

It reads the server's side of the protocol as frames (a type byte, then a 4-byte
length that counts itself; PostgreSQL docs, "Message Formats"); the proxy's URL turns
SSL and GSS encryption off for it (tests/pg_proxy.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from anyio.abc import ByteStream, SocketStream

from tests.pg_proxy import Connect, pg_proxy

_COMMITTED = b"C" + (4 + len(b"COMMIT\x00")).to_bytes(4, "big") + b"COMMIT\x00"
"""CommandComplete for a COMMIT: the server's word that the transaction is durable."""


@dataclass
class LossyProxy:
    url: str
    """The database URL through the proxy (the same role, password and database)."""
    lose_next_commit: bool = False
    """Set: the next COMMIT's acknowledgement, on any connection, is lost, and that
    connection cut. Cleared once it happened."""
    lost: int = 0
    """How many acknowledgements were lost."""


@asynccontextmanager
async def lossy_proxy(url: str) -> AsyncIterator[LossyProxy]:
    """A proxy to the database `url` names, listening on 127.0.0.1 while open."""

    async def handle(client: SocketStream, connect: Connect) -> None:
        async with await connect() as server, anyio.create_task_group() as pipes:
            pipes.start_soon(_copy, client, server)
            await _answers(server, client, proxy)
            pipes.cancel_scope.cancel()

    proxy = LossyProxy(url="")
    async with pg_proxy(url, handle) as (proxy.url, _):
        yield proxy


async def _copy(source: ByteStream, sink: ByteStream) -> None:
    with contextlib.suppress(anyio.EndOfStream):
        while True:
            await sink.send(await source.receive())


async def _answers(server: ByteStream, client: ByteStream, proxy: LossyProxy) -> None:
    """Pass the server's messages to the client, whole, until either side ends or a
    COMMIT's acknowledgement is to be lost (then return without sending it)."""
    pending = b""
    with contextlib.suppress(anyio.EndOfStream):
        while True:
            pending += await server.receive()
            complete = 0
            while len(pending) - complete >= 5:
                length = int.from_bytes(pending[complete + 1 : complete + 5], "big")
                end = complete + 1 + length
                if end > len(pending):
                    break
                if proxy.lose_next_commit and pending[complete:end] == _COMMITTED:
                    if complete:
                        await client.send(pending[:complete])
                    proxy.lose_next_commit = False
                    proxy.lost += 1
                    return
                complete = end
            if complete:
                await client.send(pending[:complete])
                pending = pending[complete:]
